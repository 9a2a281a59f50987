//! Picture quality measures, for the golden tests and the bench's check of what a viewer
//! receives against the ideal picture.

/// SSIM of two 8-bit planes (Wang et al. 2004): 11x11 gaussian window (sigma 1.5),
/// K1 = 0.01, K2 = 0.03, L = 255, averaged over every window that lies inside the plane.
/// Planes smaller than the window, or shorter than `width * height`, are an error.
pub fn ssim(width: u32, height: u32, a: &[u8], b: &[u8]) -> Result<f64, String> {
    const RADIUS: usize = 5;
    let (w, h) = (width as usize, height as usize);
    if w <= 2 * RADIUS || h <= 2 * RADIUS {
        return Err(format!(
            "a {width}x{height} plane is smaller than the 11x11 window"
        ));
    }
    if a.len() < w * h || b.len() < w * h {
        return Err(format!(
            "planes of {} and {} bytes for {width}x{height}",
            a.len(),
            b.len()
        ));
    }
    let kernel: Vec<f64> = {
        let k: Vec<f64> = (0..=2 * RADIUS)
            .map(|i| {
                let d = i as f64 - RADIUS as f64;
                (-d * d / (2.0 * 1.5 * 1.5)).exp()
            })
            .collect();
        let sum: f64 = k.iter().sum();
        k.into_iter().map(|v| v / sum).collect()
    };
    // Gaussian-weighted local means of x, y, x^2, y^2, xy over the valid windows.
    let (ow, oh) = (w - 2 * RADIUS, h - 2 * RADIUS);
    let filter = |f: &dyn Fn(usize) -> f64| -> Vec<f64> {
        let mut rows = vec![0.0; ow * h];
        for y in 0..h {
            for x in 0..ow {
                rows[y * ow + x] = kernel
                    .iter()
                    .enumerate()
                    .map(|(k, wk)| wk * f(y * w + x + k))
                    .sum();
            }
        }
        let mut out = vec![0.0; ow * oh];
        for y in 0..oh {
            for x in 0..ow {
                out[y * ow + x] = kernel
                    .iter()
                    .enumerate()
                    .map(|(k, wk)| wk * rows[(y + k) * ow + x])
                    .sum();
            }
        }
        out
    };
    let pa = |i: usize| f64::from(a[i]);
    let pb = |i: usize| f64::from(b[i]);
    let mu_a = filter(&pa);
    let mu_b = filter(&pb);
    let aa = filter(&|i| pa(i) * pa(i));
    let bb = filter(&|i| pb(i) * pb(i));
    let ab = filter(&|i| pa(i) * pb(i));
    let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
    let total: f64 = (0..ow * oh)
        .map(|i| {
            let (ma, mb) = (mu_a[i], mu_b[i]);
            let var_a = aa[i] - ma * ma;
            let var_b = bb[i] - mb * mb;
            let cov = ab[i] - ma * mb;
            ((2.0 * ma * mb + c1) * (2.0 * cov + c2))
                / ((ma * ma + mb * mb + c1) * (var_a + var_b + c2))
        })
        .sum();
    Ok(total / (ow * oh) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_planes_score_one_and_noise_scores_less() {
        let (w, h) = (32u32, 24u32);
        let a: Vec<u8> = (0..w * h).map(|i| (i * 7 % 251) as u8).collect();
        assert!((ssim(w, h, &a, &a).unwrap() - 1.0).abs() < 1e-12);
        let b: Vec<u8> = a.iter().map(|v| v.wrapping_add(40) ^ 0x55).collect();
        assert!(ssim(w, h, &a, &b).unwrap() < 0.5);
    }

    #[test]
    fn planes_that_cannot_be_compared_are_an_error() {
        assert!(ssim(8, 8, &[0; 64], &[0; 64]).is_err());
        assert!(ssim(16, 16, &[0; 256], &[0; 100]).is_err());
    }
}
