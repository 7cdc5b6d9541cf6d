/*
 * cache_load.c - a model loaded with a budget (moe_model_load_opts): after
 * the loader has pointed every weight into the mapped file(s),
 *
 *   1. every routed expert's gate, up and down matrix is located in a file
 *      (file, offset, bytes); one that is not in a file (a copy made at load)
 *      is refused;
 *   2. the file bytes that are not routed experts (attention, norms, routers,
 *      shared experts, head, expert biases, headers; the token embedding too
 *      when the head does not share it), widened to
 *      whole pages, are read into anonymous memory mapped over the same
 *      addresses (MAP_FIXED), so every pointer the loader made stays valid
 *      and the mapping keeps only expert pages, which nothing touches, and an
 *      untied embedding table, of which a token touches its own row;
 *   3. each expert gets a read plan: its pieces' 4096-aligned enclosing
 *      ranges (merged when they touch) laid one after another in a slot; a
 *      slot is the largest plan;
 *   4. the budget, less the fallback copy's bytes when one is asked for
 *      (cache_fallback.c), is checked against one layer's needs and the
 *      slot pool is allocated and faulted in (anonymous memory, huge
 *      pages); then the fallback copy is built;
 *   5. each file is opened twice: buffered, and with O_DIRECT where the file
 *      system allows it (a probe read tells).
 */
#include "cache/cache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/err.h"
#include "base/numa.h"
#include "formats/gguf.h"
#include "model/model.h"

typedef struct region {
    const unsigned char *base;
    size_t size;
    const char *path;
} region;

typedef struct span {
    int file;
    int64_t a, b; /* [a, b) file bytes */
} span;

static int span_cmp(const void *x, const void *y) {
    const span *p = x, *q = y;
    if (p->file != q->file) return p->file < q->file ? -1 : 1;
    return p->a < q->a ? -1 : p->a > q->a;
}

static int64_t align_down(int64_t x, int64_t a) { return x / a * a; }
static int64_t align_up(int64_t x, int64_t a) { return (x + a - 1) / a * a; }

/* The mapped files of m: GGUF's one, or the safetensors shards. */
static int regions_of(const moe_model *m, region **out, moe_err *err) {
    int n = m->gguf ? 1 : m->st.n_files;
    region *r = calloc((size_t)(n ? n : 1), sizeof *r);
    if (!r) return moe_fail(err, "out of memory");
    if (m->gguf) {
        r[0] = (region){m->gguf->map.data, m->gguf->map.size, m->gguf->path};
    } else {
        for (int i = 0; i < n; i++)
            r[i] = (region){m->st.files[i].data, m->st.files[i].size, m->st.paths[i]};
    }
    *out = r;
    return n;
}

/* Which file holds [p, p + n), and where: 0, or -1 when none does. */
static int locate(const region *r, int n_r, const void *p, int64_t n, int *file, int64_t *off) {
    const unsigned char *q = p;
    for (int i = 0; i < n_r; i++) {
        if (!r[i].base || q < r[i].base || q + n > r[i].base + r[i].size) continue;
        *file = i;
        *off = q - r[i].base;
        return 0;
    }
    return -1;
}

/* Read file bytes [a, b) (page aligned; b may pass the end by less than a
 * page) into anonymous memory mapped over the same addresses. */
static int make_resident(const region *r, int fd, int64_t a, int64_t b, moe_err *err) {
    unsigned char *at = (unsigned char *)r->base + a;
    size_t len = (size_t)(b - a);
    void *p = mmap(at, len, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return moe_fail(err, "%s: cannot map %zu bytes of memory for the resident weights: %s",
                        r->path, len, strerror(errno));
    if (numa_place(p, len, err) < 0) return -1; /* its mapping is unmapped with the rest of the region */
    madvise(p, len, MADV_HUGEPAGE);
    int64_t end = b < (int64_t)r->size ? b : (int64_t)r->size, got = 0;
    while (a + got < end) {
        int64_t want = end - a - got;
        if (want > ((int64_t)1 << 30)) want = (int64_t)1 << 30;
        ssize_t k = pread(fd, at + got, (size_t)want, (off_t)(a + got));
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0)
            return moe_fail(err, "%s: reading bytes %lld..%lld: %s", r->path, (long long)(a + got),
                            (long long)end, k ? strerror(errno) : "the file ended");
        got += k;
    }
    mprotect(p, len, PROT_READ);
    posix_fadvise(fd, (off_t)a, (off_t)(end - a), POSIX_FADV_DONTNEED);
    return 0;
}

/* Step 2 for one file: everything outside the sorted, merged expert spans
 * sp[0..n) (all of file f). */
static int resident_file(const region *r, int fd, const span *sp, int n, int64_t *bytes,
                         moe_err *err) {
    int64_t page = sysconf(_SC_PAGESIZE) > 0 ? sysconf(_SC_PAGESIZE) : 4096;
    int64_t end = align_up((int64_t)r->size, page), from = 0;
    for (int i = 0; i <= n; i++) {
        int64_t to = i < n ? sp[i].a : (int64_t)r->size;
        int64_t a = align_down(from, page), b = align_up(to, page);
        if (b > end) b = end;
        if (to > from && b > a) {
            if (make_resident(r, fd, a, b, err)) return -1;
            *bytes += b - a;
        }
        if (i < n) from = sp[i].b;
    }
    return 0;
}

/* Open file i for the readers: buffered, and O_DIRECT if a probe read works
 * (unless buffered reads were asked for). */
static int open_file(cache_file *f, const char *path, int buffered, moe_err *err) {
    f->fd = f->fd_direct = -1;
    f->path = strdup(path);
    if (!f->path) return moe_fail(err, "out of memory");
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0) return moe_fail(err, "%s: cannot open: %s", path, strerror(errno));
    if (buffered) {
        snprintf(f->note, sizeof f->note, "asked for");
        return 0;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_DIRECT);
    if (fd < 0) {
        snprintf(f->note, sizeof f->note, "O_DIRECT refused (%s)", strerror(errno));
        return 0;
    }
    void *buf = NULL;
    if (posix_memalign(&buf, CACHE_ALIGN, CACHE_ALIGN)) {
        close(fd);
        return moe_fail(err, "out of memory");
    }
    ssize_t k = pread(fd, buf, CACHE_ALIGN, 0);
    free(buf);
    if (k < 0) {
        snprintf(f->note, sizeof f->note, "O_DIRECT reads refused (%s)", strerror(errno));
        close(fd);
        return 0;
    }
    f->fd_direct = fd;
    f->direct = 1;
    return 0;
}

/* Step 3: expert x's read plan from its three pieces (file, offset, bytes). */
static void plan_expert(cache_expert *x, const int *file, const int64_t *off, const int64_t *len) {
    int ord[3] = {0, 1, 2};
    for (int i = 1; i < 3; i++) /* by (file, offset) */
        for (int j = i; j > 0; j--) {
            int p = ord[j - 1], q = ord[j];
            if (file[p] < file[q] || (file[p] == file[q] && off[p] <= off[q])) break;
            ord[j - 1] = q;
            ord[j] = p;
        }
    x->n_reads = 0;
    int64_t dst = 0;
    for (int k = 0; k < 3; k++) {
        int i = ord[k];
        int64_t a = align_down(off[i], CACHE_ALIGN), b = align_up(off[i] + len[i], CACHE_ALIGN);
        cache_read *r = x->n_reads ? &x->rd[x->n_reads - 1] : NULL;
        if (r && r->file == file[i] && a <= r->off + r->len) { /* touches the previous range */
            int64_t e = b > r->off + r->len ? b : r->off + r->len;
            dst += e - (r->off + r->len);
            r->len = e - r->off;
        } else {
            r = &x->rd[x->n_reads++];
            *r = (cache_read){file[i], a, b - a, 0, dst};
            dst += b - a;
        }
        int64_t need = off[i] + len[i] - r->off;
        if (need > r->need) r->need = need;
        x->at[i] = r->dst + (off[i] - r->off);
    }
    x->bytes = dst;
}

static int64_t mat_bytes(const mat *w) { return w->rows * dtype_row_bytes(w->type, w->cols); }

/* Step 1 and 3 over every routed expert; fills sp[] with their spans. */
static int plan_all(moe_cache *c, const moe_model *m, const region *rg, int n_rg, span *sp,
                    const char *path, moe_err *err) {
    const moe_config *cfg = &m->cfg;
    int n_sp = 0;
    for (int l = 0; l < cfg->n_layers; l++) {
        if (c->layer_base[l] < 0) continue;
        for (int e = 0; e < cfg->layer[l].n_experts; e++) {
            const ffn_w *f = &m->layers[l].experts[e];
            const mat *w[3] = {&f->gate, &f->up, &f->down};
            int file[3];
            int64_t off[3], len[3];
            for (int i = 0; i < 3; i++) {
                len[i] = mat_bytes(w[i]);
                if (locate(rg, n_rg, w[i]->data, len[i], &file[i], &off[i]))
                    return moe_fail(err, "%s: layer %d expert %d: its %s matrix is not in the "
                                    "model file as the engine uses it (re-laid at load); an "
                                    "expert memory budget needs it stored so (a GGUF file)",
                                    path, l, e, i == 0 ? "gate" : i == 1 ? "up" : "down");
                sp[n_sp++] = (span){file[i], off[i], off[i] + len[i]};
            }
            cache_expert *x = &c->ex[c->layer_base[l] + e];
            x->layer = l;
            x->expert = e;
            x->slot = -1;
            plan_expert(x, file, off, len);
            if (x->bytes > c->slot_bytes) c->slot_bytes = x->bytes;
            c->st.expert_bytes += len[0] + len[1] + len[2];
        }
    }
    return n_sp;
}

/* Step 4: the budget, less fb bytes of fallback copies, against one layer's needs. */
static int check_budget(moe_cache *c, const moe_model *m, int64_t mem, int64_t fb, moe_err *err) {
    const moe_config *cfg = &m->cfg;
    int kmax = 0, at = -1;
    for (int l = 0; l < cfg->n_layers; l++)
        if (c->layer_base[l] >= 0 && cfg->layer[l].top_k > kmax) {
            kmax = cfg->layer[l].top_k;
            at = l;
        }
    int64_t need = (int64_t)kmax * c->slot_bytes;
    if (fb > 0 && mem - fb < need) {
        char a[32], f[32], l[32], b[32], s[32];
        return moe_fail(err, "expert memory %s less the %s fallback copy (%s, %lld bytes) leaves "
                        "%s for the expert slots, below their minimum %s (%lld bytes): %d "
                        "experts of %s for layer %d; give at least %lld bytes",
                        cache_fmt_bytes(mem, a, sizeof a), gguf_type_name(c->fb_type),
                        cache_fmt_bytes(fb, f, sizeof f), (long long)fb,
                        cache_fmt_bytes(mem - fb > 0 ? mem - fb : 0, l, sizeof l),
                        cache_fmt_bytes(need, b, sizeof b), (long long)need, kmax,
                        cache_fmt_bytes(c->slot_bytes, s, sizeof s), at, (long long)(fb + need));
    }
    mem -= fb;
    if (mem < need) {
        char a[32], b[32], s[32];
        return moe_fail(err, "expert memory %s is below the minimum %s (%lld bytes): %d experts "
                        "of %s for layer %d", cache_fmt_bytes(mem, a, sizeof a),
                        cache_fmt_bytes(need, b, sizeof b), (long long)need, kmax,
                        cache_fmt_bytes(c->slot_bytes, s, sizeof s), at);
    }
    int64_t n = mem / c->slot_bytes;
    if (n > (1 << 30)) n = 1 << 30;
    c->n_slots = (int)n;
    if (c->n_slots > c->n_ex) c->n_slots = c->n_ex; /* more would never be used */
    c->max_held = c->n_slots / 2 > kmax ? c->n_slots / 2 : kmax;
    return 0;
}

/* madvise(MADV_POPULATE_WRITE), Linux 5.14; older kernels say EINVAL */
#define MADV_POPULATE_WRITE_ 23

static int alloc_pool(moe_cache *c, moe_err *err) {
    c->pool_bytes = (size_t)c->n_slots * (size_t)c->slot_bytes;
    void *p = mmap(NULL, c->pool_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return moe_fail(err, "cannot map %zu bytes for %d expert slots: %s", c->pool_bytes,
                        c->n_slots, strerror(errno));
    if (numa_place(p, c->pool_bytes, err) < 0) {
        munmap(p, c->pool_bytes);
        return -1;
    }
    madvise(p, c->pool_bytes, MADV_HUGEPAGE);
    /* Fault the pool in now. A direct read into pages never touched makes
     * the kernel fault and zero them inside the read: measured here, one
     * reader thread then got 0.5 GB/s from a disk that gives 2.0 into
     * pages already there, and a short run fills fresh slots all along. The
     * budget is what the cache holds anyway; a budget the machine (or the
     * memory cgroup) cannot give fails here, with a message, not later. */
    if (madvise(p, c->pool_bytes, MADV_POPULATE_WRITE_) != 0) {
        int e = errno;
        if (e != EINVAL) {
            munmap(p, c->pool_bytes);
            char a[32];
            return moe_fail(err, "cannot get %s of memory for %d expert slots: %s",
                            cache_fmt_bytes((int64_t)c->pool_bytes, a, sizeof a), c->n_slots,
                            strerror(e));
        }
        for (size_t i = 0; i < c->pool_bytes; i += 4096) ((volatile unsigned char *)p)[i] = 0;
    }
    c->pool = p;
    c->slots = calloc((size_t)c->n_slots, sizeof *c->slots);
    if (!c->slots) return moe_fail(err, "out of memory");
    for (int i = 0; i < c->n_slots; i++)
        c->slots[i] = (cache_slot){.buf = c->pool + (size_t)i * (size_t)c->slot_bytes,
                                   .expert = -1, .qprev = -1, .qnext = -1};
    return 0;
}

int cache_build(moe_cache *c, moe_model *m, const char *path, const moe_load_opts *o,
                moe_err *err) {
    const moe_config *cfg = &m->cfg;
    c->m = m;
    c->st.mem = o->mem;
    c->n_layers = cfg->n_layers;
    c->cur_layer = -1;
    c->q_head = c->q_tail = -1;
    c->policy = o->policy;
    c->prefetch = o->prefetch < 0 ? MOE_CACHE_PREFETCH_DEFAULT : o->prefetch;
    c->n_readers = o->readers > 0 ? o->readers : o->readers < 0 ? 0 : 4;
    const int64_t part_max = (int64_t)1 << 40;
    c->part = o->read_part <= 0 ? CACHE_PART : align_up(o->read_part < part_max ? o->read_part : part_max, CACHE_ALIGN);
    for (int l = 0; l < cfg->n_layers; l++) {
        c->layer_base[l] = -1;
        if (!cfg->layer[l].moe || cfg->layer[l].n_experts <= 0) continue;
        c->layer_base[l] = c->n_ex;
        c->layer_moe[l] = c->n_moe++;
        c->n_ex += cfg->layer[l].n_experts;
    }
    if (!c->n_ex) return moe_fail(err, "%s: an expert memory budget needs routed experts; the "
                                  "model has none", path);
    region *rg = NULL;
    span *sp = NULL;
    int rc = -1, n_rg = regions_of(m, &rg, err);
    if (n_rg < 0) return -1;
    c->ex = calloc((size_t)c->n_ex, sizeof *c->ex);
    c->files = calloc((size_t)n_rg, sizeof *c->files);
    sp = malloc(((size_t)c->n_ex * 3 + 1) * sizeof *sp);
    if (!c->ex || !c->files || !sp) {
        moe_fail(err, "out of memory");
        goto done;
    }
    for (int i = 0; i < n_rg; i++) {
        c->n_files++;
        if (open_file(&c->files[i], rg[i].path, o->buffered, err)) goto done;
    }
    int n_sp = plan_all(c, m, rg, n_rg, sp, path, err);
    if (n_sp < 0) goto done;
    int64_t fb = cache_fallback_plan(c, o, err);
    if (fb < 0 || check_budget(c, m, o->mem, fb, err)) goto done;
    /* An untied token-embedding table stays mapped: a token reads one row
     * of it, so only the rows of the tokens seen are ever paged in (for a
     * 150k vocabulary that is a few MiB instead of the whole table). */
    if (m->embed.data && m->embed.data != m->lm_head.data) {
        int64_t len = mat_bytes(&m->embed), off;
        int file;
        if (!locate(rg, n_rg, m->embed.data, len, &file, &off)) {
            sp[n_sp++] = (span){file, off, off + len};
            c->st.mapped_bytes = len;
        }
    }
    qsort(sp, (size_t)n_sp, sizeof *sp, span_cmp);
    int n_merged = 0; /* merge overlapping or touching spans */
    for (int i = 0; i < n_sp; i++) {
        span *t = n_merged ? &sp[n_merged - 1] : NULL;
        if (t && t->file == sp[i].file && sp[i].a <= t->b) {
            if (sp[i].b > t->b) t->b = sp[i].b;
        } else {
            sp[n_merged++] = sp[i];
        }
    }
    for (int f = 0, i = 0; f < n_rg; f++) {
        int j = i;
        while (j < n_merged && sp[j].file == f) j++;
        if (rg[f].base && resident_file(&rg[f], c->files[f].fd, sp + i, j - i,
                                        &c->st.resident_bytes, err))
            goto done;
        i = j;
    }
    if (alloc_pool(c, err)) goto done;
    if (fb > 0 && cache_fallback_build(c, fb, err)) goto done;
    rc = 0;
done:
    free(sp);
    free(rg);
    return rc;
}

void cache_free(moe_cache *c) {
    for (int i = 0; i < c->n_files; i++) {
        if (c->files[i].fd >= 0) close(c->files[i].fd);
        if (c->files[i].fd_direct >= 0) close(c->files[i].fd_direct);
        free(c->files[i].path);
    }
    free(c->files);
    if (c->pool) munmap(c->pool, c->pool_bytes);
    if (c->fb) munmap(c->fb, c->fb_map_bytes);
    free(c->slots);
    free(c->ex);
}
