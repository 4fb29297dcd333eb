/*
 * ref_models.h — a double-precision reference of two language models, forward loss and full
 * backward, for the tests only: GPT-2 (Hugging Face layout) and an LSTM language model
 * (PyTorch nn.LSTM layout). Plain C on plain pointers, no dependency on the library, written
 * for clarity rather than speed; the tests compare the float32 task graphs against it.
 *
 * Parameters are passed as an array of pointers to double, one per tensor, in the order of
 * ref_*_param_name / ref_*_param_shape; gradients come back in the same order and shapes.
 * Every tensor is row-major. Tokens and targets are (B, T), batch-major.
 *
 * The loss is the mean over the B*T positions of -log softmax(logits)[target]. The functions
 * return NAN for a bad configuration, an out-of-range token or target, or a failed allocation.
 */
#ifndef REF_MODELS_H
#define REF_MODELS_H

#include <stdint.h>
#include <stdlib.h> /* size_t */

/* ------------------------------------------------------------------------------------ GPT-2 */

/* V vocabulary, C channels, L layers, H heads (C % H == 0), P positions (rows of wpe) */
typedef struct ref_gpt_cfg {
	int V, C, L, H, P;
} ref_gpt_cfg;

/*
 * Parameter order (2 + 12 L + 2 tensors; Conv1D weights are (in, out): y = x W + b):
 *   0 transformer.wte.weight (V, C)          1 transformer.wpe.weight (P, C)
 *   per layer i, from 2 + 12 i:
 *     +0 transformer.h.i.ln_1.weight (C)      +1 transformer.h.i.ln_1.bias (C)
 *     +2 transformer.h.i.attn.c_attn.weight (C, 3C)   +3 ...attn.c_attn.bias (3C)
 *     +4 transformer.h.i.attn.c_proj.weight (C, C)    +5 ...attn.c_proj.bias (C)
 *     +6 transformer.h.i.ln_2.weight (C)      +7 transformer.h.i.ln_2.bias (C)
 *     +8 transformer.h.i.mlp.c_fc.weight (C, 4C)      +9 ...mlp.c_fc.bias (4C)
 *     +10 transformer.h.i.mlp.c_proj.weight (4C, C)   +11 ...mlp.c_proj.bias (C)
 *   2 + 12 L: transformer.ln_f.weight (C)     3 + 12 L: transformer.ln_f.bias (C)
 * The output head is tied to wte (logits = x wte^T).
 */
int ref_gpt_num_params(const ref_gpt_cfg *c);
/* rank 1 or 2, shape[1] = 0 for rank 1; rank 0 for an index out of range */
void ref_gpt_param_shape(const ref_gpt_cfg *c, int i, int *rank, int64_t shape[2]);
/* the name into buf (truncated to size - 1 characters); NULL for an index out of range */
const char *ref_gpt_param_name(const ref_gpt_cfg *c, int i, char *buf, size_t size);

/*
 * One step: the mean cross-entropy of inputs (B, T) against targets (B, T), T <= P. When grads
 * != NULL, every gradient tensor is overwritten with d loss / d parameter.
 */
double ref_gpt_step(const ref_gpt_cfg *c, const double *const *params, double *const *grads,
                    const int32_t *inputs, const int32_t *targets, int B, int T);

/*
 * The forward pass alone, with its intermediate results: logits_out (B, T, V) and losses_out
 * (B, T), the cross-entropy at each position, each optional (NULL). targets may be NULL when
 * only the logits are wanted (then the return value is 0 and losses_out is not written).
 * Returns the mean loss.
 */
double ref_gpt_forward(const ref_gpt_cfg *c, const double *const *params, const int32_t *inputs,
                       const int32_t *targets, int B, int T, double *logits_out, double *losses_out);

/* ------------------------------------------------------------------------------------ LSTM */

/* V vocabulary, C embedding size = hidden size, L stacked layers */
typedef struct ref_lstm_cfg {
	int V, C, L;
} ref_lstm_cfg;

/*
 * Parameter order (1 + 4 L + 2 tensors; gates in the order i, f, g, o):
 *   0 embedding.weight (V, C)
 *   per layer k, from 1 + 4 k:
 *     +0 lstm.weight_ih_l{k} (4C, C)   +1 lstm.weight_hh_l{k} (4C, C)
 *     +2 lstm.bias_ih_l{k} (4C)        +3 lstm.bias_hh_l{k} (4C)
 *   1 + 4 L: head.weight (V, C)        2 + 4 L: head.bias (V)
 * Every sequence starts from h = c = 0; backpropagation runs through the whole window.
 */
int ref_lstm_num_params(const ref_lstm_cfg *c);
void ref_lstm_param_shape(const ref_lstm_cfg *c, int i, int *rank, int64_t shape[2]);
const char *ref_lstm_param_name(const ref_lstm_cfg *c, int i, char *buf, size_t size);

double ref_lstm_step(const ref_lstm_cfg *c, const double *const *params, double *const *grads,
                     const int32_t *inputs, const int32_t *targets, int B, int T);

/* as ref_gpt_forward */
double ref_lstm_forward(const ref_lstm_cfg *c, const double *const *params, const int32_t *inputs,
                        const int32_t *targets, int B, int T, double *logits_out, double *losses_out);

#endif
