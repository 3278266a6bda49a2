// The block loaders of the weight type the host names (`WEIGHTS_<type>`):
// `weight_at`, `dequant_block`, `block_scale` with `dequant4` and, unless `LOADERS_ONLY`,
// `block_dot`. They read the weights bound as `wq` (quants) and `ws` (scales)
// by the includer. Q4_K and Q5_K are loaded as Q4_1 and Q5_1 (see `quant/affine.wgsl`).
#ifdef WEIGHTS_F32
#include "quant/f32.wgsl"
#endif
#ifdef WEIGHTS_F16
#include "quant/f16.wgsl"
#endif
#ifdef WEIGHTS_Q4_0
#include "quant/symmetric.wgsl"
#endif
#ifdef WEIGHTS_Q5_0
#define HIGH_BIT
#include "quant/symmetric.wgsl"
#endif
#ifdef WEIGHTS_Q4_1
#include "quant/affine.wgsl"
#endif
#ifdef WEIGHTS_Q5_1
#define HIGH_BIT
#include "quant/affine.wgsl"
#endif
#ifdef WEIGHTS_Q6_K
#include "quant/q6_k.wgsl"
#endif
#ifdef WEIGHTS_Q8_0
#include "quant/q8_0.wgsl"
#endif
