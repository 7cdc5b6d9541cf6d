/*
 * cache.h - the expert cache's insides (the public face is moe_cache.h):
 *
 *   cache_load.c    at load: which bytes of the files are routed experts, the
 *                   rest copied into anonymous memory over the mapping; each
 *                   expert's read plan; the budget checked; files opened for
 *                   direct I/O
 *   cache.c         slots, want / ready / acquire / release, statistics
 *   cache_policy.c  which slot to evict (LRU, LFU, history)
 *   cache_io.c      the reader threads and one expert's read
 *   cache_fallback.c  the optional resident low-precision copy of every
 *                   expert (moe_load_opts.fallback), built at load
 *
 * Slot states: FREE (no expert) -> QUEUED (a read waits in the FIFO) ->
 * READING (readers, or an acquire that took the read over, are reading its
 * parts; it stays in the FIFO until every part is taken) -> READY. Only FREE and READY slots that nobody holds can be given to another
 * expert; QUEUED and READING slots, and held ones, never are.
 */
#ifndef MOE_CACHE_CACHE_H
#define MOE_CACHE_CACHE_H

#include <pthread.h>
#include <stdint.h>

#include "moe.h"
#include "moe_cache.h"

#define CACHE_ALIGN 4096 /* direct I/O: offsets, lengths and buffers aligned to this */
#define CACHE_MAX_WAITERS 64 /* threads tracked while waiting for a slot (deadlock check) */
#define CACHE_PART (1 << 20) /* default moe_load_opts.read_part */
#define CACHE_MAX_PARTS 64   /* parts of one range at most */

struct moe_model;

/* One contiguous aligned read of an expert: file bytes [off, off + len)
 * into the slot at dst; need: bytes of it that must exist (the rest is
 * alignment past the data, possibly past the end of the file). */
typedef struct cache_read {
    int file;
    int64_t off, len, need;
    int64_t dst;
} cache_read;

typedef struct cache_file {
    char *path;             /* owned */
    int fd;                 /* buffered reads */
    int fd_direct;          /* O_DIRECT, or -1 where refused */
    int direct;             /* 1 while direct reads work (atomically read) */
    char note[96];          /* why not direct */
} cache_file;

typedef struct cache_expert {
    int layer, expert;
    int32_t slot;           /* -1: in no slot */
    uint8_t announced;      /* counted by a want(predicted = 0), not yet acquired */
    uint8_t predicted;      /* predicted for its layer, not yet checked against its use */
    uint8_t guessed;        /* predicted while in no slot, not yet checked */
    uint8_t guess_rank;     /* its place in the guess when first guessed in no slot
                               (MOE_CACHE_GUESS_PLACES - 1 at most) */
    uint8_t pred_rank;      /* its place in the newest guess (same bound) */
    uint8_t n_reads;
    cache_read rd[3];
    int64_t at[3];          /* gate, up, down: byte offsets in the slot */
    int64_t bytes;          /* sum of rd[].len */
    int64_t fb_at[3];       /* gate, up, down: byte offsets of the fallback copy in c->fb */
    int fb_type[3];         /* their GGUF types */
    int32_t fb_held;        /* acquires answered with the copy, not yet released */
    /* policy state */
    int64_t last_use;       /* LRU: the use clock at the last acquire */
    int64_t uses;           /* LFU: acquires, kept across evictions */
    float hist_c;           /* history: decayed uses, as of hist_t */
    int32_t hist_t;         /* the layer event it was last decayed to */
} cache_expert;

enum { SLOT_FREE = 0, SLOT_QUEUED, SLOT_READING, SLOT_READY };

typedef struct cache_slot {
    unsigned char *buf;     /* slot_bytes, CACHE_ALIGN aligned */
    int expert;             /* index into ex[], -1 when FREE */
    int state;
    int held;               /* acquires not yet released */
    pthread_t holder;       /* the thread of the latest acquire */
    uint8_t wanted;         /* the current layer asked for it (a prediction may not take it) */
    uint8_t for_prediction; /* read for a prediction and not yet acquired */
    int qprev, qnext;       /* FIFO links while QUEUED, or READING with parts not yet taken */
    int part_next;          /* READING: the next part to take (cache_io.c) */
    int part_out;           /* READING: parts being read */
    int part_rc;            /* READING: -1 once a part failed */
    int64_t part_bytes;     /* READING: bytes of the parts read */
} cache_slot;

struct moe_cache {
    const struct moe_model *m;
    pthread_mutex_t mu;
    pthread_cond_t cv_work; /* readers: a read was queued, or stop */
    pthread_cond_t cv_done; /* waiters: a read finished or a slot was released */

    int n_files;
    cache_file *files;

    int n_layers;
    int layer_base[MOE_MAX_LAYERS];  /* index of the layer's expert 0 in ex[], -1: no MoE */
    int layer_moe[MOE_MAX_LAYERS];   /* the layer's index among MoE layers */
    int n_moe;                       /* MoE layers */
    cache_expert *ex;
    int n_ex;

    cache_slot *slots;
    int n_slots;
    int64_t slot_bytes;
    unsigned char *pool;    /* n_slots * slot_bytes, anonymous memory */
    size_t pool_bytes;
    int q_head, q_tail;     /* FIFO of QUEUED slots (-1: empty) */
    int fb_type;            /* the fallback's type (GGUF id); 0: no fallback */
    unsigned char *fb;      /* every expert's fallback copy, anonymous memory (or NULL) */
    size_t fb_map_bytes;    /* its mapping */

    pthread_t *readers;
    int n_readers;
    int64_t part;           /* bytes of a part of a read (moe_load_opts.read_part) */
    int stop;

    moe_cache_policy policy;
    int prefetch;
    int max_held;
    int cur_layer;          /* the layer running (last asked for), -1 at first */
    int64_t clock;          /* use clock (LRU) */
    int32_t hist_t[MOE_MAX_LAYERS]; /* history: layer events (forward chunks) */
    float hist_n[MOE_MAX_LAYERS];   /* decayed events */
    uint8_t has_pred[MOE_MAX_LAYERS]; /* a prediction for the layer is pending */
    /* per layer and place in the guess (the engine passes a guess likeliest
     * first): decayed count of guesses (predicted experts not in a slot),
     * read or not, and of those the layer then used */
    float guess_n[MOE_MAX_LAYERS][MOE_CACHE_GUESS_PLACES];
    float guess_used[MOE_MAX_LAYERS][MOE_CACHE_GUESS_PLACES];

    pthread_t waiters[CACHE_MAX_WAITERS]; /* threads waiting for a release (all slots held) */
    int n_waiters;
    int reading;            /* reads in flight */
    double busy_since;      /* when `reading` last went from 0 to 1 */

    moe_cache_stats st;     /* counters (under mu) */
};

/* cache.c: the cache of model m (loaded from path, weights placed), or -1. */
int cache_new(struct moe_cache **out, struct moe_model *m, const char *path,
              const moe_load_opts *o, moe_err *err);
void cache_destroy(struct moe_cache *c);

/* cache_load.c: build c's files, plans and the resident copy for model m
 * loaded from path with options o (budget checked, pool allocated). */
int cache_build(struct moe_cache *c, struct moe_model *m, const char *path,
                const moe_load_opts *o, moe_err *err);
void cache_free(struct moe_cache *c);

/* cache_fallback.c: with o->fallback, each expert's copy laid out (fb_at,
 * fb_type) and its bytes returned (0 without); -1 for a type that cannot
 * be written. Before the budget is checked. */
int64_t cache_fallback_plan(struct moe_cache *c, const moe_load_opts *o, moe_err *err);
/* Build the copies (the pool allocated: its slots stage the reads). */
int cache_fallback_build(struct moe_cache *c, int64_t bytes, moe_err *err);

/* cache_io.c: read expert x into buf (no lock held). 0 or -1 with err set. */
int cache_read_expert(struct moe_cache *c, const cache_expert *x, unsigned char *buf,
                      int64_t *bytes, moe_err *err);
/* The parts expert x's reads are taken in. */
int cache_parts(const struct moe_cache *c, const cache_expert *x);
/* With mu held (released while reading): read the next part of slot s
 * (QUEUED, or READING with parts left); the one that finishes the last
 * part calls cache_read_done. 0, or -1 with err set when this part failed. */
int cache_read_part(struct moe_cache *c, int slot, moe_err *err);
/* Whether slot s has parts no one has taken yet (mu held). */
int cache_parts_left(const struct moe_cache *c, int slot);
void *cache_reader_main(void *arg);

/* cache_policy.c: the slot to give to another expert, or -1: candidates of
 * tiers up to max_tier (2: for a prediction, 3: for a layer's demand, 4:
 * for an acquire; see cache_policy.c). Called with mu held. */
int cache_victim(struct moe_cache *c, int max_tier);
/* The chance that a forward chunk of x's layer uses x, from its decayed
 * routing history (every policy keeps it; HISTORY evicts by it). */
double cache_policy_p(const struct moe_cache *c, const cache_expert *x);
/* A use of expert x (an acquire): the policies' state. */
void cache_policy_use(struct moe_cache *c, cache_expert *x);
/* A layer starts a forward chunk. */
void cache_policy_layer(struct moe_cache *c, int layer);

/* cache.c: FIFO of queued reads (mu held). */
void cache_queue_remove(struct moe_cache *c, int slot);
/* cache.c: a read starts (mu held): counts the time reads are in flight. */
void cache_read_start(struct moe_cache *c);
/* cache.c: a slot's read finished (mu held): the slot READY, or after a
 * failure FREE again (an acquire of the expert then reads it itself and
 * reports the error). */
void cache_read_done(struct moe_cache *c, int slot, int rc, int64_t bytes);

/* cache.c: "1.50 MiB" into buf. */
const char *cache_fmt_bytes(int64_t n, char *buf, size_t size);

#endif
