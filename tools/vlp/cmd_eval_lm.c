/* vlp eval --task vqa on a captioning model fine-tuned with the lm head (vlp finetune):
 * generative answers (decoded after [CLS] question [SEP]) or the train answers of the question's
 * type ranked by the decoder's log-likelihood (include/vlp_finetune.h), in the result type of the
 * zero-shot evaluation so cmd_eval_task.c scores, prints and writes them with the same code. */
#include "cli.h"
#include "vlp_downstream.h"
#include "vlp_finetune.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int vlp_ft_lm_eval_predict(const char *model, vlp_task_set *ds, int strict, const vlp_task_set *train,
                           const char *protocol, int rank_k, const vlp_vl_gen_config *gc, int batch,
                           vlp_clip_task_result *out);

/* 1: model is not a fine-tuned lm-head model (the caller predicts otherwise); 0 done; <0 error
 * (printed here). Rows whose images cannot be decoded leave ds (strict: an error). */
int vlp_ft_lm_eval_predict(const char *model, vlp_task_set *ds, int strict, const vlp_task_set *train,
                           const char *protocol, int rank_k, const vlp_vl_gen_config *gc, int batch,
                           vlp_clip_task_result *out) {
    memset(out, 0, sizeof *out);
    vlp_ft_model *m = vlp_ft_load(model);
    if (!m) {
        fprintf(stderr, "vlp eval: %s\n", vlp_last_error());
        return VLP_ERR_IO;
    }
    if (m->head != VLP_FT_HEAD_LM) {
        int head = m->head;
        vlp_ft_free(m);
        if (protocol) {
            fprintf(stderr, "vlp eval: --protocol is for a captioning model fine-tuned with the lm head; %s has head %s\n",
                    model, vlp_ft_head_name(head));
            return VLP_ERR_ARG;
        }
        return 1;
    }
    int rank = protocol && !strcmp(protocol, "rank");
    if (rank && !train) {
        vlp_ft_free(m);
        fprintf(stderr, "vlp eval: --protocol rank needs the vqa train file (--train): its answers are the candidates\n");
        return VLP_ERR_ARG;
    }
    vlp_tokenizer *tok = vlp_vl_tokenizer_load(&m->vl->cfg, model, NULL);
    vlp_task_read_options ro = {.strict = strict};
    vlp_ft_data *d = tok ? vlp_ft_data_new_ex(m, ds, tok, &ro) : NULL;
    int rc = !d ? VLP_ERR_ARG
             : rank ? vlp_ft_lm_rank(m, d, train, batch, rank_k, &out->pred, &out->confidence)
                    : vlp_ft_lm_generate(m, d, gc, batch > 16 ? 16 : batch, &out->pred, &out->confidence);
    /* generated text in the train answers' spelling where the tokens are the same */
    if (!rc && !rank && train && vlp_ft_lm_canonical_answers(tok, train, out->pred) < 0) rc = VLP_ERR_NOMEM;
    out->method = rank ? (rank_k > 0 ? "fine-tuned decoder (lm): the train answers of the question's type ranked by "
                                       "log-likelihood (the rank-k most likely by first token, BLIP)"
                                     : "fine-tuned decoder (lm): the train answers of the question's type ranked by "
                                       "log-likelihood")
                  : gc->beam > 1 ? "fine-tuned decoder (lm): answer decoded by beam search after the question"
                                 : "fine-tuned decoder (lm): answer decoded greedily after the question";
    if (rc) fprintf(stderr, "vlp eval: %s\n", vlp_last_error());
    vlp_ft_data_free(d);
    vlp_tokenizer_free(tok);
    vlp_ft_free(m);
    return rc;
}
