// The block loaders of the weight type the host names (`WEIGHTS_<type>`):
// `weight_at`, `dequant_block`, `block_scale` with `dequant4` and, unless `LOADERS_ONLY`,
// `block_dot`. They read the weights bound as `wq` (quants) and `ws` (scales)
// by the includer.
#ifdef WEIGHTS_F32
#include "quant/f32.wgsl"
#endif
#ifdef WEIGHTS_F16
#include "quant/f16.wgsl"
#endif
#ifdef WEIGHTS_Q4_0
#include "quant/q4_0.wgsl"
#endif
#ifdef WEIGHTS_Q4_1
#include "quant/q4_1.wgsl"
#endif
#ifdef WEIGHTS_Q8_0
#include "quant/q8_0.wgsl"
#endif
