//! Resizing straight-alpha RGBA artwork (overlay PNGs) for a rendition: an exact area average
//! when reducing, linear interpolation when enlarging, on premultiplied colour so transparent
//! pixels never bleed their (invisible) colour into the edges.

/// `rgba` (`width`x`height`, straight alpha, row-major) resized to `new_width`x`new_height`.
pub fn rgba_resized(
    width: u32,
    height: u32,
    rgba: &[u8],
    new_width: u32,
    new_height: u32,
) -> Vec<u8> {
    let (w, h) = (width as usize, height as usize);
    let (nw, nh) = (new_width.max(1) as usize, new_height.max(1) as usize);
    if w == 0 || h == 0 || rgba.len() < w * h * 4 {
        return vec![0; nw * nh * 4];
    }
    if (w, h) == (nw, nh) {
        return rgba[..w * h * 4].to_vec();
    }
    // Premultiplied, f32, one axis at a time (both filters are separable).
    let premultiplied: Vec<[f32; 4]> = rgba
        .chunks_exact(4)
        .take(w * h)
        .map(|p| {
            let a = f32::from(p[3]) / 255.0;
            [
                f32::from(p[0]) * a,
                f32::from(p[1]) * a,
                f32::from(p[2]) * a,
                f32::from(p[3]),
            ]
        })
        .collect();
    let across = resize_axis(&premultiplied, w, h, nw, true);
    let both = resize_axis(&across, nw, h, nh, false);
    both.iter()
        .flat_map(|p| {
            let a = p[3].clamp(0.0, 255.0);
            let unmultiply = |c: f32| {
                if a > 0.0 {
                    (c * 255.0 / a).round().clamp(0.0, 255.0) as u8
                } else {
                    0
                }
            };
            [
                unmultiply(p[0]),
                unmultiply(p[1]),
                unmultiply(p[2]),
                a.round() as u8,
            ]
        })
        .collect()
}

/// Resizes along x (`horizontal`) or y from `from` samples to `to`.
fn resize_axis(src: &[[f32; 4]], w: usize, h: usize, to: usize, horizontal: bool) -> Vec<[f32; 4]> {
    let from = if horizontal { w } else { h };
    let (out_w, out_h) = if horizontal { (to, h) } else { (w, to) };
    let taps: Vec<Vec<(usize, f32)>> = (0..to).map(|i| weights(from, to, i)).collect();
    let mut out = vec![[0.0f32; 4]; out_w * out_h];
    for y in 0..out_h {
        for x in 0..out_w {
            let (i, fixed) = if horizontal { (x, y) } else { (y, x) };
            let mut sum = [0.0f32; 4];
            for &(j, weight) in &taps[i] {
                let p = if horizontal {
                    src[fixed * w + j]
                } else {
                    src[j * w + fixed]
                };
                for c in 0..4 {
                    sum[c] += p[c] * weight;
                }
            }
            out[y * out_w + x] = sum;
        }
    }
    out
}

/// Source samples and weights (summing to 1) for output sample `i` of `to` taken from `from`.
fn weights(from: usize, to: usize, i: usize) -> Vec<(usize, f32)> {
    let ratio = from as f64 / to as f64;
    if ratio >= 1.0 {
        // Reduction: the exact overlap of [i, i+1) * ratio with each source sample.
        let (start, end) = (i as f64 * ratio, (i + 1) as f64 * ratio);
        let mut taps = Vec::new();
        let mut j = start.floor() as usize;
        while (j as f64) < end && j < from {
            let overlap = (end.min(j as f64 + 1.0) - start.max(j as f64)).max(0.0);
            if overlap > 0.0 {
                taps.push((j, (overlap / ratio) as f32));
            }
            j += 1;
        }
        taps
    } else {
        // Enlargement: linear between the two nearest source centres.
        let centre = (i as f64 + 0.5) * ratio - 0.5;
        let left = centre.floor().clamp(0.0, (from - 1) as f64) as usize;
        let right = (left + 1).min(from - 1);
        let t = (centre - left as f64).clamp(0.0, 1.0) as f32;
        if left == right {
            vec![(left, 1.0)]
        } else {
            vec![(left, 1.0 - t), (right, t)]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pixel(img: &[u8], w: u32, x: u32, y: u32) -> [u8; 4] {
        let i = ((y * w + x) * 4) as usize;
        [img[i], img[i + 1], img[i + 2], img[i + 3]]
    }

    #[test]
    fn halving_is_the_average_of_each_block() {
        // 4x2: a red opaque block and a block half white, half transparent.
        let rgba = [
            [255, 0, 0, 255],
            [255, 0, 0, 255],
            [255, 255, 255, 255],
            [0, 0, 0, 0],
            [255, 0, 0, 255],
            [255, 0, 0, 255],
            [255, 255, 255, 255],
            [0, 0, 0, 0],
        ]
        .concat();
        let out = rgba_resized(4, 2, &rgba, 2, 1);
        assert_eq!(pixel(&out, 2, 0, 0), [255, 0, 0, 255]);
        // Half covered by white: white at half opacity, not grey (no black bleeding in).
        assert_eq!(pixel(&out, 2, 1, 0), [255, 255, 255, 128]);
    }

    #[test]
    fn a_fractional_reduction_weighs_partly_covered_pixels() {
        // 3 pixels to 2: each output covers 1.5 source pixels.
        let rgba = [[0, 0, 0, 255], [90, 90, 90, 255], [180, 180, 180, 255]].concat();
        let out = rgba_resized(3, 1, &rgba, 2, 1);
        assert_eq!(pixel(&out, 2, 0, 0)[0], 30); // (0 * 1 + 90 * 0.5) / 1.5
        assert_eq!(pixel(&out, 2, 1, 0)[0], 150); // (90 * 0.5 + 180 * 1) / 1.5
    }

    #[test]
    fn a_flat_picture_stays_flat_at_any_size() {
        let rgba: Vec<u8> = std::iter::repeat_n([20, 140, 200, 180], 7 * 5)
            .flatten()
            .collect();
        for (nw, nh) in [(3, 2), (14, 10), (7, 5), (1, 1), (20, 3)] {
            let out = rgba_resized(7, 5, &rgba, nw, nh);
            assert_eq!(out.len(), (nw * nh * 4) as usize);
            for p in out.chunks_exact(4) {
                assert!(
                    p.iter()
                        .zip([20u8, 140, 200, 180])
                        .all(|(a, b)| a.abs_diff(b) <= 1),
                    "{p:?}"
                );
            }
        }
    }

    #[test]
    fn broken_input_gives_a_transparent_picture_not_a_panic() {
        assert_eq!(rgba_resized(10, 10, &[1, 2, 3], 2, 2), vec![0; 16]);
        assert_eq!(rgba_resized(0, 5, &[], 3, 0).len(), 3 * 4);
    }
}
