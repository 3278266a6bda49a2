//! Sampling inside the inferlet, from a distribution the engine returned:
//! for draws the host's samplers cannot reproduce (a caller's seed).

/// A uniform number in [0, 1) for draw `step` of the stream named by `seed`
/// (24 bits, exact in f32). Seeds are hashed before the step is added, so
/// nearby seeds (a request's seed and its choice index) name unrelated streams.
pub fn uniform(seed: u64, step: u64) -> f32 {
    (mix(mix(seed).wrapping_add(step)) >> 40) as f32 / (1u64 << 24) as f32
}

/// SplitMix64's step: a bijective 64-bit hash.
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Picks from `probs` (highest first, as the engine returns them) after
/// keeping those at least `min_p` × the first, or else the top `top_k` and
/// the smallest head holding `top_p` of the mass (as the engine's samplers
/// do: `min_p` replaces the other two); `u` in [0, 1) chooses.
pub fn pick(ids: &[u32], probs: &[f32], top_k: Option<u32>, top_p: Option<f32>, min_p: Option<f32>, u: f32) -> Option<u32> {
    let first = *probs.first()?;
    if let Some(min_p) = min_p {
        let kept = probs.iter().take_while(|&&p| p >= min_p * first).count().max(1);
        return pick(&ids[..kept], &probs[..kept], None, None, None, u);
    }
    let mut kept = probs.len().min(top_k.map_or(usize::MAX, |k| k as usize)).max(1);
    if let Some(top_p) = top_p {
        let mut mass = 0.0;
        kept = probs[..kept]
            .iter()
            .take_while(|&&p| {
                let before = mass;
                mass += p;
                before < top_p
            })
            .count()
            .max(1);
    }
    let total: f32 = probs[..kept].iter().sum();
    let mut target = u * total;
    for (i, &p) in probs[..kept].iter().enumerate() {
        if target < p {
            return Some(ids[i]);
        }
        target -= p;
    }
    Some(ids[kept - 1])
}
