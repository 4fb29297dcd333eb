/* check.c — tg_check_op: an op against its double-precision reference, on every backend, in one
 * tile and in several (see taskgrad_op.h for what is checked). A leaf of the library: it uses
 * only the public API, like a user's test would. */
#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "taskgrad_op.h"
#include "tg_check.h"

#define GUARD 2           /* rows and columns of pads around each operand */
#define NMSE_TOL 1e-9     /* float32 result vs double reference */
#define FD_SAMPLES 6      /* backend finite differences per input */
#define FD_STEP 1e-2
#define REF_FD_STEP 1e-6
#define REF_FD_MAX 200    /* reference finite differences per input (all when fewer) */

static const float CANARY = -1234.5678f;

/* ------------------------------------------------------------------ one run's state */

/* An operand: a block at (GUARD, GUARD) inside a parent padded by GUARD rows and columns. On
 * the CUDA backend the parent is first fetched to the GPU, so that the block's device copy is
 * part of the parent's (rows ld apart), not a packed copy of its own. */
typedef struct guarded {
	tg_tensor *parent, *block;
	uint32_t *parent_init; /* the parent's contents when made (4-byte elements) */
	int64_t prows, pcols;
} guarded;

typedef struct run {
	const tg_check_case *c;
	unsigned backend;
	int tiled;
	FILE *log;
	uint64_t seed, stream;
	int failures;         /* checks that failed */
	int broken;           /* a call failed: the run stops */
	int nfwd, npass[2];   /* tape nodes: after the forward, after each backward pass */
	guarded in[TG_CHECK_MAX], out[TG_CHECK_MAX], din[TG_CHECK_MAX], dout[TG_CHECK_MAX];
	tg_tensor *in_t[TG_CHECK_MAX], *out_t[TG_CHECK_MAX];
	float *fin[TG_CHECK_MAX];     /* inputs as given */
	double *hin[TG_CHECK_MAX];    /* the same, double */
	double *din_ref[TG_CHECK_MAX];
	double *dout_h[TG_CHECK_MAX]; /* R_k, for the outputs that carry a gradient */
} run;

static void say(run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(run *r, const char *fmt, ...)
{
	if (!r->log)
		return;
	va_list ap;
	va_start(ap, fmt);
	vfprintf(r->log, fmt, ap);
	va_end(ap);
	fflush(r->log);
}

/* A check: counted and said when it fails. */
#define CHECK(r, cond, ...)                              \
	do {                                             \
		if (!(cond)) {                           \
			say((r), "  FAIL: " __VA_ARGS__); \
			say((r), "\n");                  \
			(r)->failures++;                 \
		}                                        \
	} while (0)
/* A call that must work: when it fails, the run stops. */
#define CALL(r, call)                                                                                 \
	do {                                                                                          \
		int rc_ = (call);                                                                     \
		if (rc_ < 0 && !(r)->broken) {                                                        \
			say((r), "  FAIL: %s: %s\n", #call, tg_last_error());                         \
			(r)->failures++;                                                              \
			(r)->broken = 1;                                                              \
		}                                                                                     \
	} while (0)

static int64_t numel(const tg_check_operand *t)
{
	int64_t n = 1;
	for (int i = 0; i < t->rank; i++)
		n *= t->shape[i];
	return n;
}
static int64_t cols(const tg_check_operand *t) { return t->shape[t->rank - 1]; }
static int64_t rows(const tg_check_operand *t) { return numel(t) / cols(t); }
static int nresults(const tg_check_case *c) { return c->nout ? c->nout : c->ninplace; }
static const tg_check_operand *result_spec(const tg_check_case *c, int k)
{
	return c->nout ? &c->out[k] : &c->in[c->inplace[k]];
}
static double tolerance(const tg_check_case *c)
{
	return c->tolerance > 0 ? c->tolerance : NMSE_TOL;
}

/* Does output k carry a gradient in L? (output 0 when none is marked) */
static int carries(const tg_check_case *c, int k)
{
	int any = 0;
	for (int i = 0; i < c->nout; i++)
		any |= c->out[i].requires_grad;
	return any ? c->out[k].requires_grad : k == 0;
}

static void *alloc(run *r, size_t n)
{
	void *p = calloc(n ? n : 1, 1);
	if (!p) {
		say(r, "  FAIL: out of memory\n");
		r->failures++;
		r->broken = 1;
	}
	return p;
}

static void random_floats(run *r, float *dst, int64_t n, tg_check_gen gen)
{
	tg_fill f = {gen == TG_GEN_POSITIVE ? TG_FILL_UNIFORM : TG_FILL_NORMAL, gen == TG_GEN_POSITIVE ? 0.5f : 0.0f,
	             gen == TG_GEN_POSITIVE ? 2.0f : 1.0f, r->seed, ++r->stream};
	tg_fill_host(dst, n, &f);
	if (gen == TG_GEN_AWAY_FROM_ZERO) /* keep finite differences away from a kink at 0 */
		for (int64_t i = 0; i < n; i++)
			dst[i] = dst[i] >= 0 ? dst[i] + 0.1f : dst[i] - 0.1f;
}

/* values: the block's contents (packed, 4-byte elements of s->dtype; NULL: canaries);
 * canary_pads: pads hold CANARY, else random floats (int32: an invalid index, -7). */
static void guarded_new(run *r, guarded *g, const char *name, const tg_check_operand *s, const void *values,
                        int canary_pads)
{
	if (r->broken)
		return;
	g->prows = rows(s) + 2 * GUARD;
	g->pcols = cols(s) + 2 * GUARD;
	int64_t pn = g->prows * g->pcols;
	g->parent_init = alloc(r, (size_t)pn * sizeof(uint32_t));
	if (!g->parent_init)
		return;
	float *pf = (float *)g->parent_init;
	if (s->dtype == TG_I32)
		for (int64_t i = 0; i < pn; i++)
			((int32_t *)g->parent_init)[i] = -7;
	else if (canary_pads)
		for (int64_t i = 0; i < pn; i++)
			pf[i] = CANARY;
	else
		random_floats(r, pf, pn, TG_GEN_NORMAL);
	for (int64_t y = 0; y < rows(s); y++)
		for (int64_t x = 0; x < cols(s); x++) {
			uint32_t *dst = &g->parent_init[(y + GUARD) * g->pcols + x + GUARD];
			if (values)
				memcpy(dst, (const uint32_t *)values + y * cols(s) + x, sizeof *dst);
			else
				memcpy(dst, &CANARY, sizeof *dst);
		}
	char pname[64];
	snprintf(pname, sizeof pname, "%s.padded", name);
	CALL(r, tg_tensor_new_from_host(&g->parent, pname, s->dtype, TG_SHAPE(g->prows, g->pcols), g->parent_init,
	                                (size_t)pn * sizeof(uint32_t)));
	if (r->broken)
		return;
	if (r->backend == TG_BACKEND_CUDA)
		CALL(r, tg_tensor_prefetch(g->parent, TG_BACKEND_CUDA));
	tg_block b;
	memset(&b, 0, sizeof b);
	b.row0 = GUARD;
	b.col0 = GUARD;
	b.rank = s->rank;
	memcpy(b.shape, s->shape, sizeof b.shape);
	CALL(r, tg_tensor_partition_blocks(g->parent, 1, &b, &g->block));
}

/* Check the padded tensor (pads untouched; with check_inside, the block too), then free it. */
static void guarded_free(run *r, guarded *g, int check_inside, const char *what)
{
	if (!g->parent) {
		free(g->parent_init);
		memset(g, 0, sizeof *g);
		return;
	}
	int64_t pn = g->prows * g->pcols;
	uint32_t *now = alloc(r, (size_t)pn * sizeof *now);
	if (now && !r->broken)
		CALL(r, tg_tensor_to_host(g->parent, now, (size_t)pn * sizeof *now));
	int bad = 0;
	for (int64_t y = 0; now && !r->broken && y < g->prows; y++)
		for (int64_t x = 0; x < g->pcols; x++) {
			int inside = y >= GUARD && y < g->prows - GUARD && x >= GUARD && x < g->pcols - GUARD;
			int64_t i = y * g->pcols + x;
			if ((!inside || check_inside) && now[i] != g->parent_init[i]) {
				if (bad < 3)
					say(r, "  %s: element (%lld, %lld) of the padded block changed: 0x%08x -> 0x%08x (%s)\n", what,
					    (long long)(y - GUARD), (long long)(x - GUARD), g->parent_init[i], now[i],
					    inside ? "an input was written" : "canary overwritten");
				bad++;
			}
		}
	CHECK(r, bad == 0, "%s: %d guard elements changed", what, bad);
	tg_tensor_free(g->parent);
	free(now);
	free(g->parent_init);
	memset(g, 0, sizeof *g);
}

static double *read_f64(run *r, tg_tensor *t, int64_t n)
{
	float *f = alloc(r, (size_t)n * sizeof *f);
	double *d = alloc(r, (size_t)n * sizeof *d);
	if (f && d && !r->broken)
		CALL(r, tg_tensor_to_host(t, f, (size_t)n * sizeof *f));
	for (int64_t i = 0; f && d && i < n; i++)
		d[i] = r->broken ? NAN : f[i];
	free(f);
	return d;
}

/* NMSE of got vs scale * ref; infinite when got has a NaN or infinity. */
static double nmse(const double *got, const double *ref, int64_t n, double scale)
{
	double err = 0, norm = 0;
	for (int64_t i = 0; i < n; i++) {
		if (!isfinite(got[i]))
			return INFINITY;
		err += (got[i] - scale * ref[i]) * (got[i] - scale * ref[i]);
		norm += scale * ref[i] * scale * ref[i];
	}
	return err / (norm + 1e-30 * (double)n);
}

/* ------------------------------------------------------------------ inputs, forward */

static void make_inputs(run *r)
{
	const tg_check_case *c = r->c;
	for (int i = 0; i < c->nin && !r->broken; i++) {
		const tg_check_operand *s = &c->in[i];
		int64_t n = numel(s);
		r->fin[i] = alloc(r, (size_t)n * sizeof(float));
		r->hin[i] = alloc(r, (size_t)n * sizeof(double));
		if (r->broken)
			return;
		char name[16];
		snprintf(name, sizeof name, "in%d", i);
		if (s->dtype == TG_I32) {
			int32_t *t = (int32_t *)r->fin[i];
			float *u = alloc(r, (size_t)n * sizeof *u);
			if (!u)
				return;
			tg_fill f = {TG_FILL_UNIFORM, 0.0f, 1.0f, r->seed, ++r->stream};
			tg_fill_host(u, n, &f);
			int64_t range = s->gen == TG_GEN_INDEX && s->index_range > 0 ? s->index_range : 1;
			for (int64_t k = 0; k < n; k++) {
				t[k] = (int32_t)(u[k] * (float)range);
				t[k] = t[k] >= range ? (int32_t)(range - 1) : t[k];
				r->hin[i][k] = t[k];
			}
			free(u);
			/* a block too: its pads hold an invalid index, so reading past a row is seen */
			guarded_new(r, &r->in[i], name, s, t, 0);
			r->in_t[i] = r->in[i].block;
			continue;
		}
		random_floats(r, r->fin[i], n, s->gen);
		for (int64_t k = 0; k < n; k++)
			r->hin[i][k] = r->fin[i][k];
		guarded_new(r, &r->in[i], name, s, r->fin[i], 0);
		r->in_t[i] = r->in[i].block;
		if (s->requires_grad && !r->broken)
			CALL(r, tg_tensor_set_requires_grad(r->in_t[i], 1));
	}
	for (int k = 0; k < c->nout && !r->broken; k++) {
		char name[16];
		snprintf(name, sizeof name, "out%d", k);
		guarded_new(r, &r->out[k], name, &c->out[k], NULL, 1);
		r->out_t[k] = r->out[k].block;
	}
}

static tg_tensor *result_tensor(run *r, int k)
{
	return r->c->nout ? r->out_t[k] : r->in_t[r->c->inplace[k]];
}

static void check_forward(run *r)
{
	const tg_check_case *c = r->c;
	for (int k = 0; k < nresults(c) && !r->broken; k++) {
		int64_t n = numel(result_spec(c, k));
		double *ref = alloc(r, (size_t)n * sizeof(double)), *all[TG_CHECK_MAX] = {0};
		if (!ref)
			return;
		/* the reference writes every result; keep result k */
		for (int j = 0; j < nresults(c); j++)
			all[j] = j == k ? ref : alloc(r, (size_t)numel(result_spec(c, j)) * sizeof(double));
		if (!r->broken)
			c->ref_fwd(all, r->hin, c);
		double *got = read_f64(r, result_tensor(r, k), n);
		if (got && !r->broken) {
			double e = nmse(got, ref, n, 1.0);
			CHECK(r, e <= tolerance(c), "forward result %d: NMSE %.3g > %.1g", k, e, tolerance(c));
			say(r, "  forward result %d: NMSE %.2g\n", k, e);
		}
		free(got);
		for (int j = 0; j < nresults(c); j++)
			free(all[j]);
	}
}

/* ------------------------------------------------------------------ L and finite differences */

/* L = sum_k sum(out_k * R_k) from the backend's outputs; *mag (if not NULL) = the sum of
 * |out_k * R_k|, the scale of L's float32 rounding */
static double backend_L(run *r, double *mag)
{
	double l = 0, m = 0;
	for (int k = 0; k < r->c->nout; k++) {
		if (!r->dout_h[k])
			continue;
		int64_t n = numel(&r->c->out[k]);
		double *o = read_f64(r, r->out_t[k], n);
		for (int64_t i = 0; o && i < n; i++) {
			l += o[i] * r->dout_h[k][i];
			m += fabs(o[i] * r->dout_h[k][i]);
		}
		free(o);
	}
	if (mag)
		*mag = m;
	return l;
}

static double ref_L(run *r, double *const *in)
{
	const tg_check_case *c = r->c;
	double *o[TG_CHECK_MAX] = {0}, l = 0;
	for (int k = 0; k < c->nout; k++)
		o[k] = alloc(r, (size_t)numel(&c->out[k]) * sizeof(double));
	if (!r->broken)
		c->ref_fwd(o, in, c);
	for (int k = 0; k < c->nout; k++) {
		for (int64_t i = 0; r->dout_h[k] && o[k] && i < numel(&c->out[k]); i++)
			l += o[k][i] * r->dout_h[k][i];
		free(o[k]);
	}
	return l;
}

/* The reference backward against central finite differences of the reference forward. */
static void check_reference_fd(run *r)
{
	const tg_check_case *c = r->c;
	for (int i = 0; i < c->nin && !r->broken; i++) {
		if (!r->din_ref[i])
			continue;
		int64_t n = numel(&c->in[i]);
		int64_t stride = n > REF_FD_MAX ? n / REF_FD_MAX : 1;
		double worst = 0, gmax = 1e-12;
		for (int64_t k = 0; k < n; k++)
			gmax = fmax(gmax, fabs(r->din_ref[i][k]));
		for (int64_t k = 0; k < n; k += stride) {
			double x = r->hin[i][k], h = REF_FD_STEP * fmax(1.0, fabs(x));
			r->hin[i][k] = x + h;
			double lp = ref_L(r, r->hin);
			r->hin[i][k] = x - h;
			double lm = ref_L(r, r->hin);
			r->hin[i][k] = x;
			worst = fmax(worst, fabs((lp - lm) / (2 * h) - r->din_ref[i][k]) / gmax);
		}
		CHECK(r, worst < 1e-6, "reference gradient of input %d disagrees with finite differences (%.3g)", i, worst);
	}
}

/* ------------------------------------------------------------------ access modes */

/* The access modes of the recorded tasks. A task may work on a tile of one of the case's
 * tensors: its operand is then a part of that tensor. */
enum { ROLE_OTHER, ROLE_INPUT, ROLE_OUTPUT, ROLE_INPLACE, ROLE_GRAD };
/* level 0: the tensor's id; 1: the id of the tensor it is (nested) part of, at the top */
static uint64_t key_of(const tg_tensor *t, int level)
{
	if (!t)
		return 0;
	if (level)
		while (tg_tensor_parent(t))
			t = tg_tensor_parent(t);
	return tg_tensor_id(t);
}

static int role_of(const run *r, const tg_graph_operand_info *oi, int *which)
{
	const tg_check_case *c = r->c;
	/* the case's tensors are blocks of padded tensors, one each: a part of a part of one
	 * has its padded tensor at the top */
	for (int level = 0; level < 2; level++) {
		uint64_t id = level ? oi->root_id : oi->tensor_id;
		if (!id)
			continue;
		for (int k = 0; k < c->nin; k++) {
			*which = k;
			if (r->din[k].block && id == key_of(r->din[k].block, level))
				return ROLE_GRAD;
			if (r->in_t[k] && id == key_of(r->in_t[k], level)) {
				for (int j = 0; j < c->ninplace; j++)
					if (c->inplace[j] == k)
						return ROLE_INPLACE;
				return ROLE_INPUT;
			}
		}
		for (int k = 0; k < c->nout; k++) {
			*which = k;
			if (id == key_of(r->out_t[k], level))
				return ROLE_OUTPUT;
			if (r->dout[k].block && id == key_of(r->dout[k].block, level))
				return ROLE_INPUT;
		}
	}
	return ROLE_OTHER;
}

static const char *mode_name(unsigned m)
{
	switch (m) {
	case TG_R: return "TG_R";
	case TG_W: return "TG_W";
	case TG_RW: return "TG_RW";
	case TG_ACC: return "TG_ACC";
	case TG_REDUX: return "TG_REDUX";
	default: return "unknown";
	}
}

static void check_modes(run *r)
{
	tg_graph *g;
	CALL(r, tg_graph_take(&g));
	if (r->broken)
		return;
	int bad = 0, ngrad[2][TG_CHECK_MAX] = {{0}};
	/* per pass, the tensors (tiles or whole) written so far: the first write of a region
	 * writes (TG_W), the others accumulate (a tensor overlaps its tiles); in the second
	 * backward pass every contribution adds */
	uint64_t *seen = alloc(r, ((size_t)tg_graph_num_nodes(g) * 2 * (TG_MAX_OPERANDS + 1) + 16) * sizeof *seen);
	int nseen = 0, last_pass = -1;
	for (int i = 0; seen && i < tg_graph_num_nodes(g); i++) {
		int pass = i < r->nfwd ? 0 : i < r->npass[0] ? 1 : i < r->npass[1] ? 2 : -1;
		if (pass < 0)
			break;
		if (pass != last_pass)
			nseen = 0;
		last_pass = pass;
		tg_graph_node_info ni;
		tg_graph_node(g, i, &ni);
		if (ni.phase == TG_PHASE_DATA)
			continue; /* a partition switch: StarPU's own modes */
		for (int j = 0; j < tg_graph_num_operands(g, i); j++) {
			tg_graph_operand_info oi;
			tg_graph_operand(g, i, j, &oi);
			int which = 0, role = role_of(r, &oi, &which);
			unsigned m = oi.mode;
			const char *want = NULL; /* what the mode should have been, when it is wrong */
			int overwritten = role == ROLE_INPLACE && (r->c->overwritten & (1u << which));
			if (role == ROLE_INPLACE && pass == 0 && !overwritten) {
				/* its old value is read: never written blind */
				if (m == TG_W)
					want = "a read (TG_R) or read-modify-write (TG_RW, TG_ACC)";
			} else if ((role == ROLE_OUTPUT && pass == 0) || (role == ROLE_GRAD && pass > 0) ||
			           (overwritten && pass == 0)) {
				int first = pass != 2;
				for (int k = 0; first && k < nseen; k += 2)
					first &= seen[k] != oi.tensor_id && seen[k + 1] != oi.tensor_id &&
					         (!oi.parent_id || seen[k] != oi.parent_id);
				if (first && m != TG_W)
					want = m == TG_R ? "TG_W (it is read before anything wrote it)"
					                 : "TG_W (the first contribution to it)";
				else if (!first && m == TG_W)
					want = "TG_ACC (something already wrote it)";
				if (m != TG_R) {
					seen[nseen++] = oi.tensor_id;
					seen[nseen++] = oi.parent_id;
					if (role == ROLE_GRAD)
						ngrad[pass - 1][which]++;
				}
			} else if (role == ROLE_OTHER) {
				say(r, "  %s operand %d ('%s') is none of the case's tensors\n", ni.task, j, oi.tensor);
				bad++;
				continue;
			} else if (m != TG_R) {
				want = "TG_R (an input)";
			}
			if (want) {
				say(r, "  %s operand %d ('%s'): mode %s, expected %s\n", ni.task, j, oi.tensor, mode_name(m), want);
				bad++;
			}
		}
	}
	free(seen);
	/* every gradient got contributions in both passes */
	for (int k = 0; k < r->c->nin; k++)
		for (int pass = 0; r->din[k].block && pass < 2; pass++)
			CHECK(r, ngrad[pass][k] > 0, "backward pass %d wrote no gradient of input %d", pass + 1, k);
	tg_graph_free(g);
	CHECK(r, bad == 0, "%d operands were submitted with the wrong access mode", bad);
}

/* ------------------------------------------------------------------ backward */

static void check_backward(run *r)
{
	const tg_check_case *c = r->c;
	tg_tensor *outs[TG_CHECK_MAX], *douts[TG_CHECK_MAX];
	int nl = 0;
	/* R_k, the gradients of the outputs that carry one, live in padded blocks too */
	for (int k = 0; k < c->nout && !r->broken; k++) {
		if (!carries(c, k))
			continue;
		int64_t no = numel(&c->out[k]);
		float *rf = alloc(r, (size_t)no * sizeof *rf);
		r->dout_h[k] = alloc(r, (size_t)no * sizeof(double));
		if (r->broken) {
			free(rf);
			return;
		}
		random_floats(r, rf, no, TG_GEN_NORMAL);
		for (int64_t i = 0; i < no; i++)
			r->dout_h[k][i] = rf[i];
		char name[16];
		snprintf(name, sizeof name, "R%d", k);
		guarded_new(r, &r->dout[k], name, &c->out[k], rf, 0);
		free(rf);
		outs[nl] = r->out_t[k];
		douts[nl++] = r->dout[k].block;
	}
	for (int i = 0; i < c->nin && !r->broken; i++) {
		if (!c->in[i].requires_grad)
			continue;
		guarded_new(r, &r->din[i], "din", &c->in[i], NULL, 1);
		if (r->broken)
			return;
		CALL(r, tg_tensor_set_grad(r->in_t[i], r->din[i].block));
		CALL(r, tg_zero_grad(r->in_t[i])); /* the first backward must overwrite */
		r->din_ref[i] = alloc(r, (size_t)numel(&c->in[i]) * sizeof(double));
	}
	if (r->broken)
		return;
	c->ref_bwd(r->din_ref, r->dout_h, r->hin, c);
	check_reference_fd(r);

	/* twice: the first backward writes the gradients, the second accumulates into them */
	for (int pass = 1; pass <= 2 && !r->broken; pass++) {
		CALL(r, tg_backward_many(nl, outs, douts));
		r->npass[pass - 1] = tg_tape_num_nodes();
		for (int i = 0; i < c->nin && !r->broken; i++) {
			if (!r->din_ref[i])
				continue;
			double *got = read_f64(r, r->din[i].block, numel(&c->in[i]));
			if (!got)
				return;
			double e = nmse(got, r->din_ref[i], numel(&c->in[i]), (double)pass);
			CHECK(r, e <= tolerance(c), "backward (%s) gradient of input %d: NMSE %.3g > %.1g",
			      pass == 1 ? "write" : "accumulate", i, e, tolerance(c));
			say(r, "  backward (%s) input %d: NMSE %.2g\n", pass == 1 ? "write" : "accumulate", i, e);
			free(got);
		}
	}
	if (r->broken)
		return;
	check_modes(r);

	/* finite differences of L on the backend, at sampled elements */
	for (int i = 0; i < c->nin && !r->broken; i++) {
		if (!r->din_ref[i])
			continue;
		int64_t n = numel(&c->in[i]);
		double *g = read_f64(r, r->din[i].block, n); /* = 2 * gradient after the two passes */
		if (!g)
			return;
		double gmax = 1e-12, worst = 0;
		for (int64_t k = 0; k < n; k++)
			gmax = fmax(gmax, fabs(g[k] / 2));
		float u[FD_SAMPLES];
		tg_fill f = {TG_FILL_UNIFORM, 0.0f, 1.0f, r->seed, ++r->stream};
		tg_fill_host(u, FD_SAMPLES, &f);
		for (int s = 0; s < FD_SAMPLES && s < n && !r->broken; s++) {
			int64_t k = (int64_t)(u[s] * (float)n);
			k = k >= n ? n - 1 : k;
			float x = r->fin[i][k];
			double l[2], mag[2] = {0, 0};
			for (int side = 0; side < 2 && !r->broken; side++) {
				CALL(r, tg_graph_reset());
				r->fin[i][k] = side ? x - (float)FD_STEP : x + (float)FD_STEP;
				CALL(r, tg_tensor_from_host(r->in_t[i], r->fin[i], (size_t)n * sizeof(float)));
				CALL(r, c->run(r->out_t, r->in_t, c));
				l[side] = backend_L(r, &mag[side]);
			}
			if (r->broken)
				break;
			double dx = (double)(x + (float)FD_STEP) - (double)(x - (float)FD_STEP);
			r->fin[i][k] = x;
			CALL(r, tg_tensor_from_host(r->in_t[i], r->fin[i], (size_t)n * sizeof(float)));
			double fd = (l[0] - l[1]) / dx, an = g[k] / 2;
			/* the float32 outputs round L by a few ulps of its magnitude: the difference
			 * quotient cannot be trusted below that noise over dx (a mean over many rows
			 * has gradients small enough to meet it) */
			double noise = 8.0 * 0x1p-24 * (mag[0] + mag[1]) / dx;
			double rel = fabs(fd - an) / (fabs(an) + 0.1 * gmax + noise);
			worst = fmax(worst, rel);
			if (!(rel < 2e-2))
				say(r, "  finite difference of input %d at %lld: %.6g, gradient %.6g\n", i, (long long)k, fd, an);
		}
		CHECK(r, worst < 2e-2, "finite differences of input %d disagree with the gradient (relative %.3g)", i, worst);
		say(r, "  finite differences input %d: worst relative error %.2g\n", i, worst);
		free(g);
	}
}

/* ------------------------------------------------------------------ one run */

/* The case on one backend, in one tiling: the verdict. */
static tg_check_verdict check_run(const tg_check_case *c, unsigned backend, int tiled, uint64_t seed, FILE *log,
                                  int *failures)
{
	run rr, *r = &rr;
	memset(r, 0, sizeof rr);
	r->c = c;
	r->backend = backend;
	r->tiled = tiled;
	r->log = log;
	r->seed = seed;
	const char *bname = backend == TG_BACKEND_CUDA ? "cuda" : "cpu";
	say(r, "%s %s on %s, %s\n", c->op, c->label, bname, tiled ? "tiled" : "one tile");
	/* tiles of two rows, seven at most: a 17-row op runs as tiles of 3, 3, 3, 2, 2, 2, 2 */
	CALL(r, tiled ? tg_set_tiling(2, 7) : tg_set_tiling(0, 1));
	CALL(r, tg_graph_reset());
	CALL(r, tg_set_backend(backend));
	make_inputs(r);
	int unsupported = 0;
	if (!r->broken) {
		int rc = c->run(r->out_t, r->in_t, c);
		unsupported = rc == TG_ENODEV;
		if (rc < 0 && !unsupported) {
			say(r, "  FAIL: %s\n", tg_last_error());
			r->failures++;
			r->broken = 1;
		}
	}
	if (!r->broken && !unsupported) {
		r->nfwd = tg_tape_num_nodes();
		check_forward(r);
		if (c->ref_bwd) {
			check_backward(r);
		} else {
			say(r, "  backward: not applicable (%s has no backward)\n", c->op);
			r->npass[0] = r->npass[1] = r->nfwd;
			check_modes(r);
		}
	}
	int rc = tg_wait_all();
	if (rc < 0 && !unsupported) {
		say(r, "  FAIL: a task failed: %s\n", tg_last_error());
		r->failures++;
	}
	tg_graph_reset();
	for (int i = 0; i < c->nin; i++) {
		int updated = 0;
		for (int k = 0; k < c->ninplace; k++)
			updated |= c->inplace[k] == i;
		/* inputs not updated in place must be exactly as given; every pad must be intact */
		guarded_free(r, &r->in[i], !updated, "input");
		guarded_free(r, &r->din[i], 0, "gradient");
		free(r->fin[i]);
		free(r->hin[i]);
		free(r->din_ref[i]);
	}
	for (int k = 0; k < c->nout; k++) {
		guarded_free(r, &r->out[k], 0, "output");
		guarded_free(r, &r->dout[k], 1, "output gradient R");
		free(r->dout_h[k]);
	}
	tg_set_backend(TG_BACKEND_ANY);
	tg_set_tiling(0, 0);
	*failures += r->failures;
	if (unsupported && r->failures == 0) {
		say(r, "  NOT SUPPORTED on %s: %s\n", bname, tg_last_error());
		return TG_CHECK_NOT_SUPPORTED;
	}
	return r->failures ? TG_CHECK_FAIL : TG_CHECK_PASS;
}

const char *tg_check_verdict_name(tg_check_verdict v)
{
	switch (v) {
	case TG_CHECK_PASS: return "PASS";
	case TG_CHECK_FAIL: return "FAIL";
	case TG_CHECK_NOT_SUPPORTED: return "NOT SUPPORTED";
	case TG_CHECK_NO_WORKER: return "NO WORKER";
	default: return "NOT RUN";
	}
}

/* The worse of two verdicts of one backend (a failure wins). */
static tg_check_verdict worse(tg_check_verdict a, tg_check_verdict b)
{
	if (a == TG_CHECK_FAIL || b == TG_CHECK_FAIL)
		return TG_CHECK_FAIL;
	if (a == TG_CHECK_NOT_SUPPORTED || b == TG_CHECK_NOT_SUPPORTED)
		return TG_CHECK_NOT_SUPPORTED;
	return a == TG_CHECK_NOT_RUN ? b : a;
}

static int check_case_shape(const tg_check_case *c)
{
	TG_CHECK(c && c->op && c->label && c->run && c->ref_fwd, TG_EINVAL,
	         "tg_check_op: the case needs op, label, run and ref_fwd");
	TG_CHECK(c->nin >= 0 && c->nin <= TG_CHECK_MAX && c->nout >= 0 && c->nout <= TG_CHECK_MAX && c->ninplace >= 0 &&
	                 c->ninplace <= TG_CHECK_MAX && (c->nout > 0 || c->ninplace > 0),
	         TG_EINVAL, "tg_check_op: %s %s: %d inputs, %d outputs, %d in place (at most %d; some result)", c->op,
	         c->label, c->nin, c->nout, c->ninplace, TG_CHECK_MAX);
	for (int i = 0; i < c->ninplace; i++)
		TG_CHECK(c->inplace[i] >= 0 && c->inplace[i] < c->nin, TG_EINVAL, "tg_check_op: %s %s: in-place result %d is "
		         "input %d, which does not exist", c->op, c->label, i, c->inplace[i]);
	TG_CHECK(!c->ref_bwd || c->nout > 0, TG_EINVAL, "tg_check_op: %s %s: a backward needs outputs", c->op, c->label);
	for (int i = 0; i < c->nin + c->nout; i++) {
		const tg_check_operand *s = i < c->nin ? &c->in[i] : &c->out[i - c->nin];
		int64_t n;
		TG_CHECK(s->rank >= 1 && s->rank <= TG_MAX_RANK, TG_EINVAL, "tg_check_op: %s %s: operand %d has rank %d",
		         c->op, c->label, i, s->rank);
		n = numel(s);
		TG_CHECK(n >= 1 && n <= ((int64_t)1 << 26), TG_EINVAL, "tg_check_op: %s %s: operand %d has %lld elements "
		         "(1 to 2^26)", c->op, c->label, i, (long long)n);
	}
	return 0;
}

int tg_check_op(const tg_check_case *c, unsigned backends, int tilings, uint64_t seed, FILE *log,
                tg_check_result *res)
{
	tg_check_result local;
	if (!res)
		res = &local;
	memset(res, 0, sizeof *res);
	TG_CHECK(tg_is_initialized(), TG_ESTATE, "tg_check_op: taskgrad is not initialised (call tg_init first)");
	TG_TRY(check_case_shape(c));
	TG_CHECK(tilings >= 0 && tilings <= 2, TG_EINVAL, "tg_check_op: tilings must be 0, 1 or 2, got %d", tilings);
	TG_CHECK((backends & ~(unsigned)(TG_BACKEND_CPU | TG_BACKEND_CUDA)) == 0, TG_EINVAL,
	         "tg_check_op: unknown backend bits 0x%x", backends);
	if (!backends)
		backends = TG_BACKEND_CPU | TG_BACKEND_CUDA;
	tg_runtime_info info;
	TG_TRY(tg_runtime_get_info(&info));
	for (int b = 0; b < 2; b++) {
		unsigned backend = b ? TG_BACKEND_CUDA : TG_BACKEND_CPU;
		tg_check_verdict *v = b ? &res->cuda : &res->cpu;
		if (!(backends & backend))
			continue;
		if ((b ? info.ncuda : info.ncpu) == 0) {
			*v = TG_CHECK_NO_WORKER;
			if (log)
				fprintf(log, "%s %s on %s: NO WORKER\n", c->op, c->label, b ? "cuda" : "cpu");
			continue;
		}
		for (int t = 0; t < 2; t++) {
			if ((tilings == 1 && t == 1) || (tilings == 2 && t == 0))
				continue;
			/* each run its own inputs, repeatable from the seed */
			*v = worse(*v, check_run(c, backend, t, seed + 7919u * (uint64_t)(2 * b + t), log, &res->failures));
		}
		if (log)
			fprintf(log, "%s %s on %s: %s\n", c->op, c->label, b ? "cuda" : "cpu", tg_check_verdict_name(*v));
	}
	TG_CHECK(res->failures == 0, TG_EINVAL, "tg_check_op: %s %s: %d check(s) failed (cpu: %s, cuda: %s)", c->op,
	         c->label, res->failures, tg_check_verdict_name(res->cpu), tg_check_verdict_name(res->cuda));
	return 0;
}
