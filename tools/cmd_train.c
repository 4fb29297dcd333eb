/* cmd_train.c — taskgrad train: build a model, pull batches from a dataset, run the trainer,
 * print progress, write checkpoints, the CSV log and the graph of one step. */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SPIRALS_PER_CLASS 1024
#define SPIRALS_NOISE 0.04f

typedef struct run {
	cli_opts *o;
	FILE *log;
	int tty;
	double t0, last_print;
	int first_step;
	tg_graph *graph;
	int graph_step;
	float last_loss, last_val;
	int steps_done;
	double line_t0, line_tokens; /* since the last progress line */
	int line_steps;
} run;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void fmt_eta(char *buf, size_t size, double s)
{
	long t = (long)(s + 0.5);
	if (t >= 3600)
		snprintf(buf, size, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
	else
		snprintf(buf, size, "%ld:%02ld", t / 60, t % 60);
}

static int on_step(tg_trainer *tr, const tg_step_info *in, void *user)
{
	run *r = user;
	(void)tr;
	r->last_loss = in->loss;
	if (!isnan(in->val_loss))
		r->last_val = in->val_loss;
	r->steps_done = in->step + 1;
	if (r->o->graph && !r->graph && tg_graph_take(&r->graph) == 0)
		r->graph_step = in->synced ? in->step : in->step + 1; /* the step whose tasks the tape holds */
	if (r->log) {
		fprintf(r->log, "%d,%.6f,", in->step, (double)in->loss);
		if (!isnan(in->val_loss))
			fprintf(r->log, "%.6f", (double)in->val_loss);
		fprintf(r->log, ",%.6g,%.1f,%.3f\n", (double)in->lr, in->tokens_per_s, in->ms);
		fflush(r->log);
	}
	r->line_steps++;
	r->line_tokens += in->tokens_per_s * in->ms * 1e-3;
	if (!r->o->quiet) {
		double t = now();
		int last = in->step + 1 == in->steps;
		double per = (t - r->t0) / (in->step + 1 - r->first_step);
		/* time per step and tokens per second since the last line (evaluations included) */
		double span = t - r->line_t0, ms = 1e3 * span / r->line_steps, tps = r->line_tokens / span;
		char eta[32], val[32] = "";
		fmt_eta(eta, sizeof eta, per * (in->steps - in->step - 1));
		if (!isnan(r->last_val))
			snprintf(val, sizeof val, "  val_loss %.4f", (double)r->last_val);
		if (r->tty && (t - r->last_print > 0.1 || last || !isnan(in->val_loss))) {
			fprintf(stderr, "\rstep %d/%d  loss %.4f%s  lr %.2e  %.0f tok/s  %.1f ms/step  ETA %s\033[K%s",
			        in->step + 1, in->steps, (double)in->loss, val, (double)in->lr, tps, ms, eta, last ? "\n" : "");
			r->last_print = t;
			r->line_t0 = t;
			r->line_steps = 0;
			r->line_tokens = 0;
		} else if (!r->tty && (!isnan(in->val_loss) || last)) {
			fprintf(stderr, "step %d/%d  loss %.4f%s  lr %.2e  %.0f tok/s  %.1f ms/step  ETA %s\n", in->step + 1,
			        in->steps, (double)in->loss, val, (double)in->lr, tps, ms, eta);
			r->line_t0 = t;
			r->line_steps = 0;
			r->line_tokens = 0;
		}
	}
	if (r->o->checkpoint && r->o->checkpoint_every > 0 && in->synced && (in->step + 1) % r->o->checkpoint_every == 0 &&
	    in->step + 1 < in->steps) {
		if (tg_trainer_save(tr, r->o->checkpoint) < 0)
			return -1;
	}
	return 0;
}

/* The training settings of the run being resumed: taken from its checkpoint, so that the run
 * goes on as it would have; a flag given with another value is refused. */
static int resume_settings(cli_opts *o)
{
	tg_st_file *f;
	if (tg_st_open(&f, o->resume) < 0)
		return fail_usage("--resume: %s", tg_last_error());
	tg_train_config *t = &o->train;
	const struct { const char *key, *flag; int *i; float *x; } set[] = {
		{"train.steps", "steps", &t->steps, NULL}, {"train.batch", "batch", &t->batch, NULL},
		{"train.warmup", "warmup", &t->warmup, NULL}, {"train.lr", "lr", NULL, &t->lr},
		{"train.weight_decay", "weight-decay", NULL, &t->weight_decay}, {"train.clip", "clip", NULL, &t->clip},
		{"train.beta1", NULL, NULL, &t->beta1}, {"train.beta2", NULL, NULL, &t->beta2},
		{"train.eps", NULL, NULL, &t->eps}};
	int rc = 0;
	for (size_t k = 0; k < sizeof set / sizeof set[0] && rc == 0; k++) {
		const char *v = tg_st_metadata(f, set[k].key);
		if (!v)
			continue; /* an older checkpoint: the flags say */
		char *end;
		double x = strtod(v, &end);
		if (!*v || *end || !isfinite(x) || x < 0 || x > INT_MAX - 1 || (set[k].i && x != (double)(int)x)) {
			rc = fail_usage("--resume: checkpoint '%s': __metadata__ '%s' is '%.40s', not a usable value", o->resume,
			                set[k].key, v);
			break;
		}
		int given = set[k].flag && cli_given(o, set[k].flag);
		/* --steps may go further than the run saved: a longer schedule, said so by the user */
		if (given && set[k].i == &t->steps)
			continue;
		if (given && (set[k].i ? *set[k].i != (int)x : *set[k].x != (float)x)) {
			rc = fail_usage("--%s: the checkpoint '%s' was trained with %s = %s; resuming takes its settings (give the "
			                "same or leave the flag out)", set[k].flag, o->resume, set[k].key, v);
			break;
		}
		if (set[k].i)
			*set[k].i = (int)x;
		else
			*set[k].x = (float)x;
	}
	tg_st_close(f);
	return rc;
}

/* The model configuration of a run: the flags, or the checkpoint being resumed (flags that
 * differ from it are refused). */
static int run_config(cli_opts *o, tg_model_config *mc)
{
	if (!o->resume)
		return cli_model_config(o, mc);
	if (tg_model_config_read(mc, o->resume) < 0)
		return fail_usage("--resume: %s", tg_last_error());
	if (o->model && strcmp(o->model, mc->arch) != 0)
		return fail_usage("--model %s: the checkpoint '%s' holds a %s model", o->model, o->resume, mc->arch);
	const struct { const char *flag; int given, has; } f[] = {
		{"--layers", o->layers, mc->layers}, {"--dmodel", o->dmodel, mc->dmodel}, {"--heads", o->heads, mc->heads},
		{"--ctx", o->ctx, mc->ctx}};
	for (int i = 0; i < 4; i++)
		if (f[i].given > 0 && f[i].given != f[i].has)
			return fail_usage("%s %d: the checkpoint '%s' was trained with %d", f[i].flag, f[i].given, o->resume,
			                  f[i].has);
	if (cli_given(o, "untied") && !mc->untied)
		return fail_usage("--untied: the checkpoint '%s' has its head tied to the embedding", o->resume);
	/* the seed chose the weights and chooses the batches: the run goes on with its own */
	if (cli_given(o, "seed") && o->rt.seed != mc->seed)
		return fail_usage("--seed %llu: the checkpoint '%s' was trained with seed %llu (its batches follow it)",
		                  (unsigned long long)o->rt.seed, o->resume, (unsigned long long)mc->seed);
	o->rt.seed = mc->seed;
	return resume_settings(o);
}

/* The CSV log. Resuming at step `from` keeps the rows of the steps before it (a run that
 * stopped after its last checkpoint logged steps that are now run again). */
static int open_log(run *r, const char *path, int append, int from)
{
	struct stat st;
	int exists = append && stat(path, &st) == 0 && st.st_size > 0;
	if (exists) {
		FILE *in = fopen(path, "r");
		char *keep = NULL, line[512];
		size_t len = 0, cap = 0;
		while (in && fgets(line, sizeof line, in)) {
			char *end;
			long step = strtol(line, &end, 10);
			if (end != line && *end == ',' && step >= from)
				break; /* this row and the ones after it are run again */
			size_t n = strlen(line);
			if (len + n + 1 > cap) {
				cap = (len + n + 1) * 2;
				char *k = realloc(keep, cap);
				if (!k)
					break;
				keep = k;
			}
			memcpy(keep + len, line, n + 1);
			len += n;
		}
		if (in)
			fclose(in);
		r->log = fopen(path, "w");
		if (r->log && len)
			fwrite(keep, 1, len, r->log);
		free(keep);
		exists = len > 0;
	} else {
		r->log = fopen(path, "w");
	}
	if (!r->log)
		return fail_usage("--log: cannot write '%s': %s", path, strerror(errno));
	if (!exists)
		fprintf(r->log, "step,loss,val_loss,lr,tokens_per_s,ms\n");
	return 0;
}

/* Two names of one file: the same existing file, or the same place for a new one. */
static int same_file(const char *a, const char *b)
{
	struct stat sa, sb;
	if (stat(a, &sa) == 0 && stat(b, &sb) == 0)
		return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
	char *ra = realpath(a, NULL), *rb = realpath(b, NULL);
	int same = strcmp(a, b) == 0 || (ra && rb && strcmp(ra, rb) == 0);
	free(ra);
	free(rb);
	return same;
}

static int train_main(cli_opts *o, tg_model_config *mc, tg_dataset *d)
{
	tg_model *m = NULL;
	tg_trainer *tr = NULL;
	run r = {o, NULL, isatty(2), 0, 0, 0, NULL, 0, NAN, NAN, 0, 0, 0, 0};
	int rc = 0;
	if (tg_model_new(&m, mc) < 0)
		rc = fail_lib(EXIT_USAGE);
	o->train.sync_every = o->checkpoint_every;
	if (rc == 0 && tg_trainer_new(&tr, m, d, &o->train) < 0)
		rc = fail_lib(EXIT_USAGE);
	if (rc == 0 && o->init && tg_trainer_load(tr, o->init, 0) < 0)
		rc = fail_usage("--init: %s", tg_last_error());
	if (rc == 0 && o->resume && tg_trainer_load(tr, o->resume, 1) < 0)
		rc = fail_usage("--resume: %s", tg_last_error());
	tg_runtime_info info;
	tg_runtime_get_info(&info);
	if (rc == 0 && !o->quiet) {
		printf("taskgrad %s: StarPU %s, policy %s, %d CPU + %d CUDA workers, %s mode, OpenBLAS %s kernels\n",
		       TG_VERSION_STRING, info.starpu_version, info.sched, info.ncpu, info.ncuda,
		       info.deterministic ? "deterministic" : "fast", info.blas_core);
		if (!strcmp(mc->arch, "mlp"))
			printf("model mlp: %d hidden layers of %d, %lld weights; data: two spirals\n", mc->layers, mc->dmodel,
			       (long long)tg_model_num_weights(m));
		else {
			char heads[32] = "";
			if (!strcmp(mc->arch, "gpt"))
				snprintf(heads, sizeof heads, ", %d heads", mc->heads);
			printf("model %s: %d layers, dmodel %d%s, ctx %d, %.2fM weights; data: %s (%lld bytes for training, "
			       "%lld for validation)\n", mc->arch, mc->layers, mc->dmodel, heads, mc->ctx,
			       tg_model_num_weights(m) / 1e6, o->data, (long long)d->size[0], (long long)d->size[1]);
		}
		printf("train: %d steps of batch %d from step %d, AdamW lr %g (warm-up %d, cosine), weight decay %g, clip %g, seed "
		       "%llu\n", o->train.steps, o->train.batch, tg_trainer_step(tr), (double)o->train.lr, o->train.warmup,
		       (double)o->train.weight_decay, (double)o->train.clip, (unsigned long long)o->rt.seed);
		const tg_train_config *t = &o->train;
		if (t->micro_batches > 1 || t->pipeline > 1 || t->tensor_parallel > 1) {
			printf("parallel:");
			if (t->micro_batches > 1)
				printf(" %d micro-batches of %d (gradients summed by %s)", t->micro_batches,
				       t->batch / t->micro_batches,
				       t->reduce == TG_REDUCE_REDUX ? "StarPU's reductions" : "a fixed tree of adds");
			if (t->pipeline > 1) {
				int W = info.ncpu + info.ncuda;
				printf("%s %d pipeline stages (%s; workers", t->micro_batches > 1 ? ";" : "", t->pipeline,
				       t->schedule == TG_SCHEDULE_1F1B ? "1F1B" : "GPipe");
				for (int s = 0; s < t->pipeline; s++) {
					int lo = s * W / t->pipeline, hi = (s + 1) * W / t->pipeline - 1;
					printf(lo == hi ? " %s%d" : " %s%d-%d", s ? "| " : "", lo, hi);
				}
				printf(")");
			}
			if (t->tensor_parallel > 1)
				printf("%s tensor-parallel %d", t->micro_batches > 1 || t->pipeline > 1 ? ";" : "",
				       t->tensor_parallel);
			printf("\n");
		}
		fflush(stdout);
	}
	if (rc == 0 && o->dump_grads) {
		float loss;
		if (tg_trainer_dump_grads(tr, o->dump_grads, &loss) < 0)
			rc = fail_lib(1);
		else if (!o->quiet)
			printf("gradients of step %d (loss %.6f): %s\n", tg_trainer_step(tr), (double)loss, o->dump_grads);
		goto out;
	}
	if (rc == 0 && o->log)
		rc = open_log(&r, o->log, o->resume != NULL, tg_trainer_step(tr));
	if (rc == 0) {
		r.t0 = r.line_t0 = now();
		r.first_step = tg_trainer_step(tr);
		if (tg_trainer_run(tr, on_step, &r) < 0) {
			if (r.tty && !o->quiet)
				fputc('\n', stderr);
			rc = fail_lib(1);
		}
	}
	if (rc == 0 && o->checkpoint) {
		if (tg_trainer_save(tr, o->checkpoint) < 0)
			rc = fail_lib(1);
	}
	if (rc == 0) {
		double s = now() - r.t0;
		int done = r.steps_done - r.first_step;
		if (done > 0) {
			printf("final loss %.4f", (double)r.last_loss);
			if (!isnan(r.last_val))
				printf(", validation loss %.4f", (double)r.last_val);
			size_t peak = 0;
			tg_memory_get(NULL, &peak, 0);
			printf(", %d steps in %.1f s (%.1f ms/step), tensors peak %.1f MiB\n", done, s, 1e3 * s / done,
			       peak / 1048576.0);
		}
		if (o->checkpoint)
			printf("checkpoint (step %d): %s\n", tg_trainer_step(tr), o->checkpoint);
	}
	if (rc == 0 && r.graph) {
		if (tg_graph_dump_dot(r.graph, o->graph) < 0)
			rc = fail_lib(1);
		else
			printf("graph of step %d: %s (%d tasks, %d dependencies)\n", r.graph_step, o->graph,
			       tg_graph_num_nodes(r.graph), tg_graph_num_edges(r.graph));
	}
out:
	if (r.log && fclose(r.log) != 0 && rc == 0)
		rc = fail_usage("--log: writing '%s' failed", o->log);
	tg_graph_free(r.graph);
	tg_trainer_free(tr);
	tg_model_free(m);
	return rc;
}

/* The parallel strategies against the batch and the model, before anything starts (the
 * number of workers a pipeline needs is checked once the runtime runs). */
static int check_parallel(const cli_opts *o, const tg_model_config *mc)
{
	const tg_train_config *t = &o->train;
	if (t->batch % t->micro_batches)
		return fail_usage("--micro-batches %d: must divide --batch %d", t->micro_batches, t->batch);
	if (cli_given(o, "reduce") && t->micro_batches == 1)
		return fail_usage("--reduce: there is nothing to reduce without --micro-batches M > 1");
	if (t->reduce == TG_REDUCE_REDUX && o->rt.deterministic)
		return fail_usage("--reduce redux: StarPU's reductions sum in an order that varies from run to run; give --fast "
		                  "too (deterministic mode refuses them)");
	if (cli_given(o, "schedule") && t->micro_batches == 1)
		return fail_usage("--schedule: orders micro-batches: give --micro-batches M > 1");
	int gpt = !strcmp(mc->arch, "gpt"), lstm = !strcmp(mc->arch, "lstm");
	if (t->pipeline > 1 && !gpt && !lstm)
		return fail_usage("--pipeline: the %s model has no stages (gpt and lstm have)", mc->arch);
	if (t->tensor_parallel > 1 && !gpt && !lstm)
		return fail_usage("--tensor-parallel: the %s model has no split (gpt and lstm have)", mc->arch);
	if (t->pipeline > mc->layers)
		return fail_usage("--pipeline %d: more stages than the model's %d layers", t->pipeline, mc->layers);
	if (o->rt.ncpu > 0 && t->pipeline > o->rt.ncpu)
		return fail_usage("--pipeline %d: more stages than CPU workers (--ncpu %d); every stage needs one",
		                  t->pipeline, o->rt.ncpu);
	if (gpt && mc->heads % t->tensor_parallel)
		return fail_usage("--tensor-parallel %d: must divide the gpt's %d heads", t->tensor_parallel, mc->heads);
	if (lstm && mc->dmodel % t->tensor_parallel)
		return fail_usage("--tensor-parallel %d: must divide the lstm's %d hidden units (--dmodel)",
		                  t->tensor_parallel, mc->dmodel);
	if (lstm && t->tensor_parallel > 8)
		return fail_usage("--tensor-parallel %d: the lstm gathers at most 8 groups", t->tensor_parallel);
	return 0;
}

int cmd_train(int argc, char **argv)
{
	cli_opts o;
	int done, rc;
	static const char summary[] =
		"Train a model; every forward, backward and update op of a step is a StarPU task, submitted at once.";
	if ((rc = cli_parse(argc, argv, CLI_RUNTIME | CLI_MODEL | CLI_TRAIN | CLI_OUTPUT, "train", summary, &o, &done)) ||
	    done)
		return rc;
	if (o.init && o.resume)
		return fail_usage("--init and --resume: give one (--resume continues a run, --init only takes weights)");
	tg_model_config mc;
	if ((rc = run_config(&o, &mc)))
		return rc;
	if (!(o.train.lr > 0))
		return fail_usage("--lr: must be > 0, got %g", (double)o.train.lr);
	if (strcmp(mc.arch, "mlp") != 0 && !o.data)
		return fail_usage("--data: the %s model trains on a text file: give --data FILE", mc.arch);
	if (!strcmp(mc.arch, "mlp") && o.data)
		return fail_usage("--data: the mlp model trains on the two spirals, not on a file");
	if (o.train.steps == 0 && !o.checkpoint && !o.dump_grads)
		return fail_usage("--steps 0 trains nothing: give --checkpoint FILE to write the initial weights");
	if (o.checkpoint_every && !o.checkpoint)
		return fail_usage("--checkpoint-every: give --checkpoint FILE to write to");
	if (o.data && access(o.data, R_OK) != 0)
		return fail_usage("--data: cannot read '%s'", o.data);
	if (o.dump_grads && (o.checkpoint || o.log || o.graph || o.checkpoint_every))
		return fail_usage("--dump-grads runs no training: it writes no --checkpoint, --log or --graph");
	if (o.train.steps == 0 && o.graph)
		return fail_usage("--graph: --steps 0 runs no step to draw");
	if (!strcmp(mc.arch, "gpt") && o.train.batch > 64)
		return fail_usage("--batch: the gpt model takes at most 64 sequences per step, got %d", o.train.batch);
	if ((rc = check_parallel(&o, &mc)))
		return rc;
	const struct { const char *flag, *path; int out; } files[] = {
		{"--checkpoint", o.checkpoint, 1}, {"--log", o.log, 1}, {"--dump-grads", o.dump_grads, 1},
		{"--graph", o.graph, 1}, {"--data", o.data, 0}, {"--resume", o.resume, 0}, {"--init", o.init, 0}};
	const int nfiles = (int)(sizeof files / sizeof files[0]);
	for (int i = 0; i < nfiles; i++)
		if (files[i].out && files[i].path && (rc = check_output_path(files[i].flag, files[i].path)))
			return rc;
	/* an output never replaces another output or an input (the checkpoint being resumed is the
	 * one exception: --resume F --checkpoint F goes on saving over it) */
	for (int i = 0; i < nfiles; i++)
		for (int j = i + 1; j < nfiles; j++)
			if (files[i].path && files[j].path && (files[i].out || files[j].out) &&
			    !(!strcmp(files[i].flag, "--checkpoint") && !strcmp(files[j].flag, "--resume")) &&
			    same_file(files[i].path, files[j].path))
				return fail_usage("%s and %s name the same file '%s'", files[i].flag, files[j].flag, files[j].path);
	if (o.log && access(o.log, F_OK) == 0 && access(o.log, W_OK) != 0)
		return fail_usage("--log: cannot write '%s': %s", o.log, strerror(errno));
	/* the data before the runtime: a file that cannot serve is a usage error, found first */
	tg_dataset *d = NULL;
	if ((!strcmp(mc.arch, "mlp") ? tg_dataset_spirals(&d, SPIRALS_PER_CLASS, SPIRALS_NOISE, o.rt.seed)
	                             : tg_dataset_text(&d, o.data, mc.ctx, o.rt.seed)) < 0)
		return fail_usage("--data: %s", tg_last_error());
	if ((rc = cli_init(&o))) {
		tg_dataset_free(d);
		return rc;
	}
	rc = train_main(&o, &mc, d);
	tg_dataset_free(d);
	if (tg_shutdown() < 0 && rc == 0)
		rc = fail_lib(1);
	return rc;
}
