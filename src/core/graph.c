/* The static graph: node creation, memory planning, forward and backward replay.
 *
 * Why a static graph: training shapes are fixed per run, so the graph is built
 * once and every buffer (activations, saved state, gradients, per-thread
 * scratch) is planned into a single arena. A step is then a walk over the node
 * list with no allocation and no bookkeeping. Backward is reverse-mode: the
 * node list is already a topological order, so walking it backwards and
 * calling each op's backward kernel (which accumulates into its inputs'
 * gradients) differentiates any model written as a forward function.
 *
 * Training graphs keep every activation (backward needs them). Inference graphs
 * reuse a buffer as soon as its last reader has run, so memory stays at the
 * working set of a couple of layers. */
#include "internal.h"
#include "../ops/gemm.h"

#include <math.h>
#include <omp.h>

vlp_graph *vlp_graph_new(void) {
    vlp_graph *g = vlp_calloc(1, sizeof *g);
    if (!g) {
        vlp_set_error("vlp_graph_new: out of memory");
        return NULL;
    }
    g->seed = 0x5eed;
    const char *prof = getenv("VLP_PROFILE");
    g->profile = prof && *prof && *prof != '0';
    return g;
}

static void free_packed(vlp_graph *g) {
    if (!g->packed) return;
    for (int i = 0; i < g->n_nodes; i++) vlp_gemm_packed_free(g->packed[i]);
    vlp_free(g->packed);
    g->packed = NULL;
}

void vlp_graph_free(vlp_graph *g) {
    if (!g) return;
    free_packed(g);
    for (int i = 0; i < g->n_nodes; i++) vlp_free(g->nodes[i]);
    vlp_free(g->nodes);
    vlp_free(g->arena);
    vlp_free(g);
}

const char *vlp_graph_error(const vlp_graph *g) {
    if (!g) return "graph is NULL";
    return g->failed ? g->err : NULL;
}

size_t vlp_graph_arena_bytes(const vlp_graph *g) { return g ? g->arena_bytes : 0; }
int vlp_graph_node_count(const vlp_graph *g) { return g ? g->n_nodes : 0; }

int vlp_graph_op_count(const vlp_graph *g, const char *name) {
    int n = 0;
    if (!g || !g->built || !name) return 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const vlp_tensor *t = g->nodes[i];
        if (t->data && t->op && !(t->flags & VLP_FLAG_VIEW) && !strcmp(vlp_ops[t->op]->name, name)) n++;
    }
    return n;
}
vlp_tensor *vlp_graph_node(const vlp_graph *g, int i) { return g && i >= 0 && i < g->n_nodes ? g->nodes[i] : NULL; }
const char *vlp_op_name(int op) { return op >= 0 && op < OP_COUNT && vlp_ops[op] ? vlp_ops[op]->name : "?"; }

void vlp_graph_set_training(vlp_graph *g, int on, uint64_t step) {
    if (!g) return;
    g->training = on;
    g->step = step;
}

void vlp_graph_set_seed(vlp_graph *g, uint64_t seed) {
    if (g) g->seed = seed;
}

void vlp_exec_fail(vlp_exec *ex, int status, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
#pragma omp critical(vlp_exec_fail)
    if (!ex->status) {
        ex->status = status;
        memcpy(ex->msg, buf, sizeof buf);
    }
}

int vlp_rows_uniform(const vlp_tensor *t) {
    if (t->ndim == 0) return 1;
    if (t->stride[t->ndim - 1] != 1 && t->shape[t->ndim - 1] != 1) return 0;
    for (int i = 0; i + 2 < t->ndim; i++)
        if (t->shape[i] != 1 && t->stride[i] != t->stride[i + 1] * t->shape[i + 1]) return 0;
    return 1;
}

int vlp_is_contiguous(const vlp_tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s) return 0;
        s *= t->shape[i];
    }
    return 1;
}

int vlp_check_srcs(vlp_graph *g, const char *fn, int n, vlp_tensor *const *srcs) {
    if (!g) {
        vlp_set_error("%s: graph is NULL", fn);
        return 0;
    }
    if (g->failed) return 0;
    if (g->built) {
        vlp_graph_fail(g, "%s: graph already built; create ops before vlp_graph_build", fn);
        return 0;
    }
    for (int i = 0; i < n; i++) {
        if (!srcs[i]) {
            vlp_graph_fail(g, "%s: input %d is NULL", fn, i);
            return 0;
        }
    }
    return 1;
}

static vlp_tensor *push_node(vlp_graph *g, vlp_dtype dtype, int ndim, const int64_t *shape, const char *fn) {
    if (ndim < 0 || ndim > VLP_MAX_DIMS) {
        vlp_graph_fail(g, "%s: %d dims (max %d)", fn, ndim, VLP_MAX_DIMS);
        return NULL;
    }
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] <= 0) {
            vlp_graph_fail(g, "%s: dim %d has size %lld", fn, i, (long long)shape[i]);
            return NULL;
        }
        numel *= shape[i];
    }
    if (g->n_nodes == g->cap_nodes) {
        int cap = g->cap_nodes ? g->cap_nodes * 2 : 256;
        vlp_tensor **nn = realloc(g->nodes, (size_t)cap * sizeof *nn);
        if (!nn) {
            vlp_graph_fail(g, "%s: out of memory", fn);
            return NULL;
        }
        g->nodes = nn;
        g->cap_nodes = cap;
    }
    vlp_tensor *t = vlp_calloc(1, sizeof *t);
    if (!t) {
        vlp_graph_fail(g, "%s: out of memory", fn);
        return NULL;
    }
    t->dtype = dtype;
    t->ndim = ndim;
    t->numel = numel;
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        t->shape[i] = shape[i];
        t->stride[i] = s;
        s *= shape[i];
    }
    t->id = g->n_nodes;
    g->nodes[g->n_nodes++] = t;
    return t;
}

vlp_tensor *vlp_new_node(vlp_graph *g, int op, vlp_dtype dtype, int ndim, const int64_t *shape,
                         vlp_tensor *s0, vlp_tensor *s1, vlp_tensor *s2, vlp_tensor *s3) {
    vlp_tensor *t = push_node(g, dtype, ndim, shape, vlp_op_name(op));
    if (!t) return NULL;
    t->op = op;
    t->src[0] = s0;
    t->src[1] = s1;
    t->src[2] = s2;
    t->src[3] = s3;
    for (int i = 0; i < VLP_MAX_SRC; i++)
        if (vlp_needs_grad(t->src[i]) && dtype == VLP_F32) t->flags |= VLP_FLAG_REQUIRES_GRAD;
    snprintf(t->name, sizeof t->name, "%s_%d", vlp_op_name(op), t->id);
    return t;
}

static vlp_tensor *make_input(vlp_graph *g, const char *name, vlp_dtype dtype, int ndim, const int64_t *shape,
                              int grad) {
    if (!g) {
        vlp_set_error("vlp_input(%s): graph is NULL", name ? name : "");
        return NULL;
    }
    if (g->failed) return NULL;
    if (g->built) {
        vlp_graph_fail(g, "vlp_input(%s): graph already built", name ? name : "");
        return NULL;
    }
    if (ndim > 0 && !shape) {
        vlp_graph_fail(g, "vlp_input(%s): shape is NULL", name ? name : "");
        return NULL;
    }
    if (dtype != VLP_F32 && dtype != VLP_I32) {
        vlp_graph_fail(g, "vlp_input(%s): unknown dtype %d", name ? name : "", (int)dtype);
        return NULL;
    }
    vlp_tensor *t = push_node(g, dtype, ndim, shape, "vlp_input");
    if (!t) return NULL;
    t->flags = VLP_FLAG_INPUT | (grad ? VLP_FLAG_REQUIRES_GRAD : 0);
    snprintf(t->name, sizeof t->name, "%s", name ? name : "input");
    return t;
}

vlp_tensor *vlp_input(vlp_graph *g, const char *name, vlp_dtype dtype, int ndim, const int64_t *shape) {
    return make_input(g, name, dtype, ndim, shape, 0);
}

vlp_tensor *vlp_input_grad(vlp_graph *g, const char *name, int ndim, const int64_t *shape) {
    return make_input(g, name, VLP_F32, ndim, shape, 1);
}

vlp_tensor *vlp_keep(vlp_tensor *t) {
    if (t) t->flags |= VLP_FLAG_KEEP;
    return t;
}

vlp_tensor *vlp_set_name(vlp_tensor *t, const char *name) {
    if (t && name) snprintf(t->name, sizeof t->name, "%s", name);
    return t;
}

/* ---- planning ---------------------------------------------------------------- */

static size_t align_up(size_t n) { return (n + VLP_ALIGN - 1) / VLP_ALIGN * VLP_ALIGN; }
static size_t data_bytes(const vlp_tensor *t) { return align_up((size_t)t->numel * 4); }

static vlp_tensor *view_base(vlp_tensor *t) {
    while (t->flags & VLP_FLAG_VIEW) t = t->src[0];
    return t;
}

/* First-fit allocator over arena offsets, used to reuse dead buffers in
 * inference graphs. Blocks are kept sorted by offset and coalesced. */
typedef struct {
    size_t off, len;
} span;
typedef struct {
    span *free;
    int n, cap;
    size_t top;
} planner;

static int planner_alloc(planner *p, size_t len, size_t *off) {
    for (int i = 0; i < p->n; i++) {
        if (p->free[i].len >= len) {
            *off = p->free[i].off;
            p->free[i].off += len;
            p->free[i].len -= len;
            if (!p->free[i].len) {
                memmove(&p->free[i], &p->free[i + 1], (size_t)(p->n - i - 1) * sizeof(span));
                p->n--;
            }
            return 0;
        }
    }
    /* Extend the top, absorbing a free block that ends there. */
    if (p->n && p->free[p->n - 1].off + p->free[p->n - 1].len == p->top) {
        *off = p->free[p->n - 1].off;
        p->top = *off + len;
        p->n--;
        return 0;
    }
    *off = p->top;
    p->top += len;
    return 0;
}

static int planner_release(planner *p, size_t off, size_t len) {
    if (!len) return 0;
    if (p->n == p->cap) {
        int cap = p->cap ? p->cap * 2 : 64;
        span *ns = realloc(p->free, (size_t)cap * sizeof *ns);
        if (!ns) return -1;
        p->free = ns;
        p->cap = cap;
    }
    int i = 0;
    while (i < p->n && p->free[i].off < off) i++;
    memmove(&p->free[i + 1], &p->free[i], (size_t)(p->n - i) * sizeof(span));
    p->free[i] = (span){off, len};
    p->n++;
    /* coalesce with neighbours */
    if (i + 1 < p->n && p->free[i].off + p->free[i].len == p->free[i + 1].off) {
        p->free[i].len += p->free[i + 1].len;
        memmove(&p->free[i + 1], &p->free[i + 2], (size_t)(p->n - i - 2) * sizeof(span));
        p->n--;
    }
    if (i > 0 && p->free[i - 1].off + p->free[i - 1].len == p->free[i].off) {
        p->free[i - 1].len += p->free[i].len;
        memmove(&p->free[i], &p->free[i + 1], (size_t)(p->n - i - 1) * sizeof(span));
        p->n--;
    }
    return 0;
}

/* Marks nodes reachable (backwards) from `out` and from kept tensors. */
static char *mark_live(vlp_graph *g, vlp_tensor *out) {
    char *live = vlp_calloc((size_t)g->n_nodes, 1);
    if (!live) return NULL;
    live[out->id] = 1;
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        vlp_tensor *t = g->nodes[i];
        if (t->flags & VLP_FLAG_KEEP) live[i] = 1;
        if (!live[i]) continue;
        for (int s = 0; s < VLP_MAX_SRC; s++)
            if (t->src[s] && t->src[s]->id >= 0) live[t->src[s]->id] = 1;
    }
    return live;
}

/* Inference only: fold the activation or residual add that is the sole reader of a linear
 * layer's output into its GEMM (VLP_LINEAR_IP_ACT), saving a pass over the activations; the
 * absorbed node becomes a view of the linear one. Bit-identical results. VLP_FUSE=0 disables it
 * (benchmarks compare both). */
static int fuse_linear_epilogues(vlp_graph *g, const char *live) {
    const char *env = getenv("VLP_FUSE");
    if (env && !strcmp(env, "0")) return 0;
    int n = g->n_nodes;
    int *readers = vlp_calloc((size_t)n, sizeof(int)), *reader = vlp_malloc((size_t)n * sizeof(int));
    if (!readers || !reader) {
        vlp_free(readers);
        vlp_free(reader);
        return VLP_ERR_NOMEM;
    }
    for (int i = 0; i < n; i++) {
        if (!live[i]) continue;
        vlp_tensor *t = g->nodes[i];
        for (int k = 0; k < VLP_MAX_SRC; k++)
            if (t->src[k] && t->src[k]->id >= 0) {
                readers[t->src[k]->id]++;
                reader[t->src[k]->id] = i;
            }
    }
    for (int i = 0; i < n; i++) {
        vlp_tensor *t = g->nodes[i];
        if (!live[i] || t->op != OP_LINEAR || readers[i] != 1 || t->src[3] || t->ip[VLP_LINEAR_IP_ACT] ||
            (t->flags & (VLP_FLAG_KEEP | VLP_FLAG_VIEW | VLP_FLAG_INPUT)))
            continue;
        vlp_tensor *c = g->nodes[reader[i]];
        if (c->flags & (VLP_FLAG_KEEP | VLP_FLAG_VIEW)) continue;
        int act = c->op == OP_QUICK_GELU ? VLP_GEMM_ACT_QUICK_GELU
                  : c->op == OP_GELU     ? VLP_GEMM_ACT_GELU
                  : c->op == OP_GELU_TANH ? VLP_GEMM_ACT_GELU_TANH
                                          : VLP_GEMM_ACT_NONE;
        if (act) {
            t->ip[VLP_LINEAR_IP_ACT] = act;
        } else if (c->op == OP_ADD && c->src[0]->numel == c->src[1]->numel) {
            vlp_tensor *r = c->src[0] == t ? c->src[1] : c->src[0];
            /* the residual must exist when the GEMM runs and be read row-major like the output */
            if (r == t || view_base(r)->id >= t->id || !vlp_is_contiguous(r)) continue;
            t->src[3] = r;
        } else {
            continue;
        }
        c->op = OP_VIEW;
        c->flags |= VLP_FLAG_VIEW;
        c->src[0] = t;
        c->src[1] = c->src[2] = c->src[3] = NULL;
        c->ip[0] = 0;
    }
    vlp_free(readers);
    vlp_free(reader);
    return 0;
}

static void set_view_pointers(vlp_tensor *t) {
    vlp_tensor *s = t->src[0];
    int64_t off = t->ip[0];
    if (s->dtype == VLP_F32)
        t->data = (float *)s->data + off;
    else
        t->data = (int32_t *)s->data + off;
    t->grad = s->grad ? s->grad + off : NULL;
}

int vlp_graph_build(vlp_graph *g, vlp_tensor *out, int mode) {
    if (!g) {
        vlp_set_error("vlp_graph_build: graph is NULL");
        return VLP_ERR_ARG;
    }
    if (g->failed) {
        vlp_set_error("%s", g->err);
        return VLP_ERR_ARG;
    }
    if (g->built) {
        vlp_set_error("vlp_graph_build: graph already built");
        return VLP_ERR_STATE;
    }
    if (!out || out->id < 0 || out->id >= g->n_nodes || g->nodes[out->id] != out) {
        vlp_set_error("vlp_graph_build: output is NULL or not a node of this graph");
        return VLP_ERR_ARG;
    }
    if (mode == VLP_BUILD_TRAIN && !(out->flags & VLP_FLAG_REQUIRES_GRAD)) {
        vlp_set_error("vlp_graph_build: output '%s' does not depend on any parameter or input that "
                      "requires a gradient", out->name);
        return VLP_ERR_ARG;
    }
    int threads = vlp_get_threads();
    char *live = mark_live(g, out);
    if (!live) {
        vlp_set_error("vlp_graph_build: out of memory");
        return VLP_ERR_NOMEM;
    }
    int train = mode == VLP_BUILD_TRAIN;
    out->flags |= VLP_FLAG_KEEP;

    /* Scratch: the largest per-thread need of any live op. */
    size_t scratch = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        vlp_tensor *t = g->nodes[i];
        if (live[i] && vlp_ops[t->op]->scratch) {
            size_t s = vlp_ops[t->op]->scratch(t, threads);
            if (s > scratch) scratch = s;
        }
    }
    scratch = align_up(scratch);

    planner pl = {0};
    int rc = VLP_OK;
    if (train) {
        /* Every activation and saved state lives for the whole step. */
        for (int i = 0; i < g->n_nodes; i++) {
            vlp_tensor *t = g->nodes[i];
            if (!live[i] || (t->flags & VLP_FLAG_VIEW)) continue;
            planner_alloc(&pl, data_bytes(t), &t->off_data);
            if (t->aux_bytes) planner_alloc(&pl, align_up(t->aux_bytes), &t->off_aux);
        }
        /* Gradients of non-parameter nodes: one range, zeroed per backward. */
        size_t gbegin = pl.top;
        for (int i = 0; i < g->n_nodes; i++) {
            vlp_tensor *t = g->nodes[i];
            if (!live[i] || (t->flags & VLP_FLAG_VIEW) || !(t->flags & VLP_FLAG_REQUIRES_GRAD)) continue;
            planner_alloc(&pl, data_bytes(t), &t->off_grad);
        }
        g->grad_zero_bytes = pl.top - gbegin;
        g->grad_zero_begin = (char *)(uintptr_t)gbegin; /* offset until the arena exists */
    } else {
        if (fuse_linear_epilogues(g, live)) {
            vlp_free(live);
            vlp_set_error("vlp_graph_build: out of memory");
            return VLP_ERR_NOMEM;
        }
        /* Last reader of each base buffer. */
        int *last = vlp_malloc((size_t)g->n_nodes * sizeof(int));
        if (!last) {
            vlp_free(live);
            vlp_set_error("vlp_graph_build: out of memory");
            return VLP_ERR_NOMEM;
        }
        for (int i = 0; i < g->n_nodes; i++) last[i] = i;
        for (int i = 0; i < g->n_nodes; i++) {
            if (!live[i]) continue;
            vlp_tensor *t = g->nodes[i];
            for (int s = 0; s < VLP_MAX_SRC; s++)
                if (t->src[s] && t->src[s]->id >= 0) {
                    int b = view_base(t->src[s])->id; /* -1: a view of a parameter (not planned) */
                    if (b >= 0 && last[b] < i) last[b] = i;
                }
            if (t->flags & VLP_FLAG_VIEW) { /* a view extends its base's life to its own last reader */
                int b = view_base(t)->id;
                if (b >= 0 && last[b] < last[i]) last[b] = last[i];
            }
        }
        /* Views may be read after their base's recorded last use: propagate once more. */
        for (int i = g->n_nodes - 1; i >= 0; i--) {
            vlp_tensor *t = g->nodes[i];
            if (live[i] && (t->flags & VLP_FLAG_VIEW)) {
                int b = view_base(t)->id;
                if (b < 0) continue; /* a view of a parameter */
                if (last[b] < last[i]) last[b] = last[i];
                if (t->flags & VLP_FLAG_KEEP) last[b] = g->n_nodes; /* a kept view keeps its base */
            }
        }
        /* Inputs first: the caller fills them before the forward, so they must not share space
         * with any node, including nodes computed before an input's position in the graph. */
        for (int i = 0; i < g->n_nodes; i++) {
            vlp_tensor *t = g->nodes[i];
            if (live[i] && (t->flags & VLP_FLAG_INPUT) && !(t->flags & VLP_FLAG_VIEW))
                planner_alloc(&pl, data_bytes(t), &t->off_data);
        }
        for (int i = 0; i < g->n_nodes && rc == VLP_OK; i++) {
            vlp_tensor *t = g->nodes[i];
            if (!live[i] || (t->flags & VLP_FLAG_VIEW)) continue;
            if (!(t->flags & VLP_FLAG_INPUT)) planner_alloc(&pl, data_bytes(t), &t->off_data);
            if (t->aux_bytes) { /* saved state is only workspace without backward */
                planner_alloc(&pl, align_up(t->aux_bytes), &t->off_aux);
                if (planner_release(&pl, t->off_aux, align_up(t->aux_bytes))) rc = VLP_ERR_NOMEM;
            }
            for (int j = 0; j <= i; j++) { /* free bases whose last reader is node i */
                vlp_tensor *b = g->nodes[j];
                if (!live[j] || (b->flags & (VLP_FLAG_VIEW | VLP_FLAG_KEEP | VLP_FLAG_INPUT)) || last[j] != i) continue;
                if (planner_release(&pl, b->off_data, data_bytes(b))) rc = VLP_ERR_NOMEM;
            }
        }
        vlp_free(last);
        g->grad_zero_bytes = 0;
    }
    size_t off_scratch;
    planner_alloc(&pl, scratch * (size_t)threads, &off_scratch);
    free(pl.free);
    if (rc != VLP_OK) {
        vlp_free(live);
        vlp_set_error("vlp_graph_build: out of memory while planning");
        return rc;
    }

    g->arena_bytes = pl.top ? pl.top : VLP_ALIGN;
    g->arena = vlp_aligned_alloc(g->arena_bytes);
    if (!g->arena) {
        vlp_free(live);
        vlp_set_error("vlp_graph_build: cannot allocate a %.1f MiB arena", g->arena_bytes / 1048576.0);
        return VLP_ERR_NOMEM;
    }
    /* Zeroed once so that padding and never-written gradients are defined. */
    memset(g->arena, 0, g->arena_bytes);
    g->grad_zero_begin = g->arena + (uintptr_t)g->grad_zero_begin;
    for (int i = 0; i < g->n_nodes; i++) {
        vlp_tensor *t = g->nodes[i];
        if (!live[i]) {
            t->data = NULL;
            continue;
        }
        if (t->flags & VLP_FLAG_VIEW) {
            set_view_pointers(t);
            continue;
        }
        t->data = g->arena + t->off_data;
        t->aux = t->aux_bytes ? g->arena + t->off_aux : NULL;
        t->grad = (train && (t->flags & VLP_FLAG_REQUIRES_GRAD)) ? (float *)(g->arena + t->off_grad) : NULL;
    }
    vlp_free(live);
    g->scratch_per_thread = scratch;
    g->nthreads = threads;
    g->out = out;
    g->mode = mode;
    g->built = 1;
    g->scratch = g->arena + off_scratch;
    return VLP_OK;
}

static int check_built(vlp_graph *g, const char *fn);

int vlp_graph_pack_weights(vlp_graph *g) {
    int rc = check_built(g, "vlp_graph_pack_weights");
    if (rc) return rc;
    if (g->mode != VLP_BUILD_INFERENCE) {
        vlp_set_error("vlp_graph_pack_weights: only for inference graphs (training changes the weights)");
        return VLP_ERR_STATE;
    }
    free_packed(g);
    if (!(g->packed = vlp_calloc((size_t)g->n_nodes, sizeof *g->packed))) goto oom;
    for (int i = 0; i < g->n_nodes; i++) {
        vlp_tensor *t = g->nodes[i], *w = t->src[1];
        if (!t->data || t->op != OP_LINEAR || (t->flags & VLP_FLAG_VIEW) || !(w->flags & VLP_FLAG_PARAM)) continue;
        int N = (int)w->shape[0], K = (int)w->shape[1];
        if (!(g->packed[i] = vlp_gemm_pack_b(1, N, K, vlp_f(w), K))) goto oom;
    }
    return VLP_OK;
oom:
    free_packed(g);
    vlp_set_error("vlp_graph_pack_weights: out of memory");
    return VLP_ERR_NOMEM;
}

/* ---- replay -------------------------------------------------------------------- */

static void exec_init(vlp_graph *g, vlp_exec *ex) {
    int cur = vlp_get_threads();
    ex->g = g;
    ex->nthreads = cur < g->nthreads ? cur : g->nthreads; /* scratch was sized for g->nthreads */
    ex->scratch = g->scratch;
    ex->scratch_per_thread = g->scratch_per_thread;
    ex->training = g->training;
    ex->seed = g->seed;
    ex->step = g->step;
    ex->status = VLP_OK;
    ex->msg[0] = 0;
}

static int check_built(vlp_graph *g, const char *fn) {
    if (!g) {
        vlp_set_error("%s: graph is NULL", fn);
        return VLP_ERR_ARG;
    }
    if (!g->built) {
        vlp_set_error("%s: call vlp_graph_build first%s%s", fn, g->failed ? "; the graph failed: " : "",
                      g->failed ? g->err : "");
        return VLP_ERR_STATE;
    }
    return VLP_OK;
}

int vlp_graph_forward(vlp_graph *g) {
    int rc = check_built(g, "vlp_graph_forward");
    if (rc) return rc;
    vlp_exec ex;
    exec_init(g, &ex);
    for (int i = 0; i < g->n_nodes; i++) {
        vlp_tensor *t = g->nodes[i];
        if (!t->data || !t->op || (t->flags & VLP_FLAG_VIEW)) continue;
        double t0 = g->profile ? omp_get_wtime() : 0;
        vlp_ops[t->op]->forward(t, &ex);
        if (g->profile) {
            g->prof_s[t->op][0] += omp_get_wtime() - t0;
            g->prof_n[t->op][0]++;
        }
        if (ex.status) {
            vlp_set_error("%s", ex.msg);
            return ex.status;
        }
    }
    vlp_tensor *o = g->out;
    if (g->mode == VLP_BUILD_TRAIN && o->numel == 1 && !isfinite(vlp_f(o)[0])) {
        vlp_set_error("loss '%s' is %s at step %llu", o->name, isnan(vlp_f(o)[0]) ? "NaN" : "Inf",
                      (unsigned long long)g->step);
        return VLP_ERR_NUMERIC;
    }
    return VLP_OK;
}

int vlp_graph_backward(vlp_graph *g, const float *seed) {
    int rc = check_built(g, "vlp_graph_backward");
    if (rc) return rc;
    if (g->mode != VLP_BUILD_TRAIN) {
        vlp_set_error("vlp_graph_backward: graph was built for inference");
        return VLP_ERR_STATE;
    }
    vlp_tensor *o = g->out;
    if (!seed && o->numel != 1) {
        vlp_set_error("vlp_graph_backward: output '%s' has %lld elements; pass a seed gradient",
                      o->name, (long long)o->numel);
        return VLP_ERR_ARG;
    }
    double tz = g->profile ? omp_get_wtime() : 0;
    memset(g->grad_zero_begin, 0, g->grad_zero_bytes);
    if (g->profile) {
        g->prof_s[OP_NONE][1] += omp_get_wtime() - tz; /* reported as "zero grads" */
        g->prof_n[OP_NONE][1]++;
    }
    if (seed)
        memcpy(o->grad, seed, (size_t)o->numel * sizeof(float));
    else
        o->grad[0] = 1.0f;
    vlp_exec ex;
    exec_init(g, &ex);
    for (int i = o->id; i >= 0; i--) {
        vlp_tensor *t = g->nodes[i];
        if (!t->data || !t->op || !(t->flags & VLP_FLAG_REQUIRES_GRAD) || !vlp_ops[t->op]->backward) continue;
        double t0 = g->profile ? omp_get_wtime() : 0;
        vlp_ops[t->op]->backward(t, &ex);
        if (g->profile) {
            g->prof_s[t->op][1] += omp_get_wtime() - t0;
            g->prof_n[t->op][1]++;
        }
        if (ex.status) {
            vlp_set_error("%s", ex.msg);
            return ex.status;
        }
    }
    return VLP_OK;
}

void vlp_graph_set_profile(vlp_graph *g, int on) {
    if (g) g->profile = on;
}

void vlp_graph_profile_print(vlp_graph *g, FILE *f) {
    if (!g || !f) return;
    double total = 0;
    for (int op = 0; op < OP_COUNT; op++) total += g->prof_s[op][0] + g->prof_s[op][1];
    fprintf(f, "%-16s %10s %10s %7s\n", "op", "fwd ms", "bwd ms", "share");
    for (int k = 0; k < OP_COUNT; k++) { /* selection by descending time */
        int best = -1;
        double bt = -1;
        for (int op = 0; op < OP_COUNT; op++) {
            double t = g->prof_s[op][0] + g->prof_s[op][1];
            if ((g->prof_n[op][0] || g->prof_n[op][1]) && t > bt) bt = t, best = op;
        }
        if (best < 0) break;
        fprintf(f, "%-16s %10.1f %10.1f %6.1f%%\n", best == OP_NONE ? "zero grads" : vlp_op_name(best),
                1e3 * g->prof_s[best][0], 1e3 * g->prof_s[best][1],
                total > 0 ? 100.0 * (g->prof_s[best][0] + g->prof_s[best][1]) / total : 0.0);
        g->prof_s[best][0] = g->prof_s[best][1] = 0;
        g->prof_n[best][0] = g->prof_n[best][1] = 0;
    }
    fprintf(f, "%-16s %21.1f\n", "total", 1e3 * total);
}
