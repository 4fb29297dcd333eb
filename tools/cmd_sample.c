/* cmd_sample.c — taskgrad sample: text from a checkpoint's language model. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

/* Bytes as the model's tokens would print them: as they are (the model writes UTF-8 text as
 * bytes), except NUL. */
static void put_tokens(const int32_t *t, int n)
{
	for (int i = 0; i < n; i++)
		putchar(t[i] ? (unsigned char)t[i] : ' ');
}

int cmd_sample(int argc, char **argv)
{
	cli_opts o;
	int done, rc;
	static const char summary[] =
		"Print the prompt and the text a trained model (a checkpoint of taskgrad train) continues it with.";
	if ((rc = cli_parse(argc, argv, CLI_SAMPLE, "sample", summary, &o, &done)) || done)
		return rc;
	if (!o.checkpoint)
		return fail_usage("--checkpoint: give the checkpoint to sample from (written by taskgrad train --checkpoint)");
	tg_model_config mc;
	if (tg_model_config_read(&mc, o.checkpoint) < 0)
		return fail_usage("--checkpoint: %s", tg_last_error());
	if (!strcmp(mc.arch, "mlp"))
		return fail_usage("--checkpoint: '%s' holds an mlp, not a language model", o.checkpoint);
	int np = (int)strlen(o.prompt);
	if (np == 0)
		return fail_usage("--prompt: the prompt is empty");
	for (int i = 0; i < np; i++)
		if ((unsigned char)o.prompt[i] >= (unsigned)mc.vocab)
			return fail_usage("--prompt: byte %d (%u) is not in the model's vocabulary of %d", i,
			                  (unsigned char)o.prompt[i], mc.vocab);
	if ((rc = cli_init(&o)))
		return rc;
	tg_model *m = NULL;
	int32_t *prompt = malloc((size_t)np * sizeof *prompt), *out = malloc(((size_t)o.tokens + 1) * sizeof *out);
	if (!prompt || !out)
		rc = fail_usage("out of memory");
	for (int i = 0; rc == 0 && i < np; i++)
		prompt[i] = (unsigned char)o.prompt[i];
	if (rc == 0 && tg_model_new(&m, &mc) < 0)
		rc = fail_lib(1);
	if (rc == 0 && tg_model_load(m, o.checkpoint) < 0)
		rc = fail_usage("--checkpoint: %s", tg_last_error());
	tg_sample_config sc = {o.tokens, o.temperature, o.top_k, o.rt.seed};
	if (rc == 0 && tg_sample(m, prompt, np, &sc, out) < 0)
		rc = fail_lib(1);
	if (rc == 0) {
		fputs(o.prompt, stdout);
		put_tokens(out, o.tokens);
		putchar('\n');
	}
	tg_model_free(m);
	free(prompt);
	free(out);
	if (tg_shutdown() < 0 && rc == 0)
		rc = fail_lib(1);
	return rc;
}
