/* spirals.c — the two-spirals classification set, generated from a seed.
 * Class c's points lie on r = 0.1 + 0.9 t, angle = 2 pi turns t + c pi, t uniform in [0, 1),
 * plus Gaussian jitter; classes alternate, then the set is shuffled. */
#include "tg_model.h"

#include <math.h>
#include <stdlib.h>

int tg_data_spirals(float *xy, int32_t *labels, int n, float noise, double turns, uint64_t seed)
{
	TG_CHECK(xy && labels, TG_EINVAL, "spirals: NULL buffer");
	TG_CHECK(n >= 1 && n <= (1 << 28), TG_EINVAL, "spirals: points per class must be 1 to 2^28, got %d", n);
	TG_CHECK(noise >= 0 && isfinite(noise), TG_EINVAL, "spirals: noise must be finite and >= 0, got %g", (double)noise);
	TG_CHECK(turns > 0 && isfinite(turns), TG_EINVAL, "spirals: turns must be > 0, got %g", turns);
	int total = 2 * n;
	float *t = malloc((size_t)total * sizeof *t);
	float *z = malloc((size_t)total * 2 * sizeof *z);
	float *u = malloc((size_t)total * sizeof *u);
	int rc = (t && z && u) ? 0 : tg_set_error(TG_ENOMEM, "out of memory");
	if (rc == 0)
		rc = tg_fill_host(t, total, &(tg_fill){TG_FILL_UNIFORM, 0, 1, seed, 100});
	if (rc == 0)
		rc = tg_fill_host(z, 2 * (int64_t)total, &(tg_fill){TG_FILL_NORMAL, 0, 1, seed, 101});
	if (rc == 0)
		rc = tg_fill_host(u, total, &(tg_fill){TG_FILL_UNIFORM, 0, 1, seed, 102});
	if (rc == 0) {
		for (int k = 0; k < total; k++) {
			int c = k % 2;
			double r = 0.1 + 0.9 * t[k];
			double a = 2.0 * M_PI * turns * t[k] + c * M_PI;
			xy[2 * k] = (float)(r * cos(a) + noise * z[2 * k]);
			xy[2 * k + 1] = (float)(r * sin(a) + noise * z[2 * k + 1]);
			labels[k] = c;
		}
		for (int i = total - 1; i > 0; i--) { /* Fisher-Yates */
			int j = (int)(u[i] * (i + 1));
			j = j > i ? i : j;
			float x0 = xy[2 * i], y0 = xy[2 * i + 1];
			int32_t l0 = labels[i];
			xy[2 * i] = xy[2 * j];
			xy[2 * i + 1] = xy[2 * j + 1];
			labels[i] = labels[j];
			xy[2 * j] = x0;
			xy[2 * j + 1] = y0;
			labels[j] = l0;
		}
	}
	free(t);
	free(z);
	free(u);
	return rc;
}
