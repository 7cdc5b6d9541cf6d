/*
 * test_files.c - how the library meets the file system:
 *  - a FIFO, directory or device where a model, config, tokenizer or GGUF
 *    file is expected is refused at once (a FIFO would block open() until a
 *    writer appears: each case runs in a child process with a deadline);
 *  - writers never follow a symlink planted at a temporary or target name:
 *    the link's target is left unchanged and the write still succeeds;
 *  - the data shards are replaced as a set, meta.json last.
 */
#include "test.h"
#include "base/atomic.h"
#include "base/mapfile.h"
#include "test_util.h"
#include "formats/hf_config.h"
#include "formats/safetensors.h"
#include "formats/st_stream.h"
#include "train/data.h"
#include "moe.h"
#include "moe_data.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------- helpers */

static const char *tmp_path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", test_tmpdir(), name);
    return buf;
}

static int write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t n = strlen(s);
    int ok = fwrite(s, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* The whole file, NUL-terminated (malloc'd), or NULL; its length in *n. */
static char *slurp_n(const char *path, size_t *n) {
    char *s = NULL;
    moe_err e;
    return read_file(path, 1 << 24, &s, n, &e) == 0 ? s : NULL;
}

static char *slurp(const char *path) {
    size_t n;
    return slurp_n(path, &n);
}

static int copy(const char *from, const char *to) {
    char *s = slurp(from);
    int rc = s ? write_text(to, s) : -1;
    free(s);
    return rc;
}

/* A load that must fail naming `want`: run in a child so that a blocking
 * open() shows up as a timeout instead of hanging the tests. */
typedef int (*load_fn)(const char *path, moe_err *err);

static void expect_refused_fast(load_fn fn, const char *path, const char *want, const char *what) {
    int pfd[2];
    if (pipe(pfd) != 0) {
        CHECK_MSG(0, "%s: pipe: %s", what, strerror(errno));
        return;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        moe_err err = {{0}};
        int rc = fn(path, &err);
        char msg[sizeof err.msg + 8];
        int n = snprintf(msg, sizeof msg, "%d %s", rc, err.msg);
        if (write(pfd[1], msg, (size_t)n) < 0) _exit(2);
        _exit(0);
    }
    close(pfd[1]);
    int status = 0, done = 0;
    for (int i = 0; i < 500 && !done; i++) { /* 5 s */
        done = waitpid(pid, &status, WNOHANG) == pid;
        if (!done) nanosleep(&(struct timespec){0, 10000000}, NULL);
    }
    if (!done) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    char msg[600] = {0};
    ssize_t got = done ? read(pfd[0], msg, sizeof msg - 1) : 0;
    close(pfd[0]);
    CHECK_MSG(done, "%s: still blocked after 5 s", what);
    if (!done) return;
    CHECK_MSG(got > 0 && strncmp(msg, "-1 ", 3) == 0, "%s: not refused (%s)", what, msg);
    CHECK_MSG(strstr(msg, want) != NULL, "%s: \"%s\" lacks \"%s\"", what, msg, want);
}

static int load_model(const char *path, moe_err *err) {
    moe_model *m = NULL;
    int rc = moe_model_load(&m, path, err);
    moe_model_free(m);
    return rc;
}

static int load_tokenizer(const char *path, moe_err *err) {
    moe_tokenizer *t = NULL;
    int rc = moe_tokenizer_load(&t, path, err);
    moe_tokenizer_free(t);
    return rc;
}

static int load_st(const char *path, moe_err *err) {
    st_store s;
    int rc = st_open_file(&s, path, err);
    if (rc == 0) st_close(&s);
    return rc;
}

static int load_config(const char *dir, moe_err *err) {
    moe_config c;
    return hf_config_load(&c, dir, err);
}

/* --------------------------------------------------- non-regular files */

TEST(files_fifo_refused_without_blocking) {
    char dir[1024], p[1100], src[1100], fix[1024];
    snprintf(fix, sizeof fix, "%s/models/mixtral_base", test_fixtures());

    /* config.json is a FIFO */
    tmp_path(dir, sizeof dir, "cfg_fifo");
    CHECK(mkdir(dir, 0755) == 0);
    snprintf(p, sizeof p, "%s/config.json", dir);
    CHECK(mkfifo(p, 0644) == 0);
    expect_refused_fast(load_model, dir, "FIFO", "model with a FIFO config.json");
    expect_refused_fast(load_config, dir, "FIFO", "hf_config_load with a FIFO config.json");

    /* model.safetensors is a FIFO (config.json real) */
    tmp_path(dir, sizeof dir, "st_fifo");
    CHECK(mkdir(dir, 0755) == 0);
    snprintf(p, sizeof p, "%s/config.json", dir);
    snprintf(src, sizeof src, "%s/config.json", fix);
    CHECK(copy(src, p) == 0);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    CHECK(mkfifo(p, 0644) == 0);
    expect_refused_fast(load_model, dir, "FIFO", "model with a FIFO model.safetensors");
    expect_refused_fast(load_st, p, "FIFO", "st_open_file on a FIFO");

    /* tokenizer.json, as a file and in a directory; a .gguf */
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    CHECK(mkfifo(p, 0644) == 0);
    expect_refused_fast(load_tokenizer, p, "FIFO", "a FIFO tokenizer.json");
    expect_refused_fast(load_tokenizer, dir, "FIFO", "a directory with a FIFO tokenizer.json");
    tmp_path(p, sizeof p, "model.gguf");
    CHECK(mkfifo(p, 0644) == 0);
    expect_refused_fast(load_tokenizer, p, "FIFO", "a FIFO .gguf tokenizer");
    expect_refused_fast(load_model, p, "FIFO", "a FIFO .gguf model");
}

TEST(files_directory_and_device_refused) {
    char p[1100];
    tmp_path(p, sizeof p, "model.safetensors");
    CHECK(mkdir(p, 0755) == 0);
    expect_refused_fast(load_st, p, "a directory", "a directory named model.safetensors");
    expect_refused_fast(load_st, "/dev/null", "a device", "/dev/null as safetensors");
    expect_refused_fast(load_tokenizer, "/dev/zero", "a device", "/dev/zero as tokenizer.json");
}

/* ------------------------------------------------------ planted links */

/* A victim file and a symlink to it at `link`. */
static void plant(const char *victim, const char *link) {
    CHECK(write_text(victim, "precious\n") == 0);
    CHECK(symlink(victim, link) == 0);
}

static void victim_intact(const char *victim, const char *what) {
    char *s = slurp(victim);
    CHECK_MSG(s && strcmp(s, "precious\n") == 0, "%s: the link's target was written (%.40s)", what,
              s ? s : "(unreadable)");
    free(s);
}

/* No PATH.tmp* file is left in dir. */
static int temp_files_left(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += strstr(e->d_name, ".tmp") != NULL;
    if (d) closedir(d);
    return n;
}

static const float ONE_TWO[2] = {1, 2};

TEST(files_writers_do_not_follow_planted_links) {
    char dir[1024], path[1100], link[1200], victim[1100];
    moe_err err = {{0}};
    tmp_path(dir, sizeof dir, "links");
    CHECK(mkdir(dir, 0755) == 0);
    snprintf(victim, sizeof victim, "%s/victim", test_tmpdir());
    st_write_tensor t = {"x", DT_F32, 1, {2}, ONE_TWO};

    /* st_stream: the old fixed temporary name */
    snprintf(path, sizeof path, "%s/a.safetensors", dir);
    snprintf(link, sizeof link, "%s.tmp", path);
    plant(victim, link);
    st_stream w;
    int rc = sts_begin(&w, path, &t, 1, NULL, &err);
    if (rc == 0) rc = sts_write(&w, ONE_TWO, sizeof ONE_TWO, &err);
    if (rc == 0) rc = sts_finish(&w, &err);
    CHECK_MSG(rc == 0, "st_stream: %s", err.msg);
    victim_intact(victim, "st_stream");
    st_store s;
    CHECK_MSG(st_open_file(&s, path, &err) == 0, "st_stream output: %s", err.msg);
    if (s.n_tensors == 1) CHECK(((const float *)s.tensors[0].data)[1] == 2);
    st_close(&s);
    unlink(link);

    /* st_write and config.json with a link at the target itself: the link
     * is replaced, not written through */
    snprintf(path, sizeof path, "%s/b.safetensors", dir);
    CHECK(symlink(victim, path) == 0);
    CHECK_MSG(st_write(path, &t, 1, NULL, &err) == 0, "st_write: %s", err.msg);
    victim_intact(victim, "st_write");
    struct stat sb;
    CHECK(lstat(path, &sb) == 0 && S_ISREG(sb.st_mode));

    char fix[1100];
    snprintf(fix, sizeof fix, "%s/models/mixtral_base", test_fixtures());
    moe_config cfg;
    CHECK_MSG(hf_config_load(&cfg, fix, &err) == 0, "%s", err.msg);
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK(symlink(victim, path) == 0);
    CHECK_MSG(hf_config_write(&cfg, path, "float32", &err) == 0, "hf_config_write: %s", err.msg);
    victim_intact(victim, "hf_config_write");

    /* atomic_write: a link at the old fixed temporary name, the new kind of
     * name cannot be guessed; nothing is left behind */
    snprintf(path, sizeof path, "%s/c.txt", dir);
    snprintf(link, sizeof link, "%s.tmp", path);
    CHECK(symlink(victim, link) == 0);
    CHECK_MSG(atomic_write(path, "new\n", 4, &err) == 0, "atomic_write: %s", err.msg);
    victim_intact(victim, "atomic_write");
    char *got = slurp(path);
    CHECK(got && strcmp(got, "new\n") == 0);
    free(got);
    unlink(link);
    CHECK_EQ_INT(temp_files_left(dir), 0);
}

TEST(files_tokenizer_train_does_not_follow_planted_links) {
    char dir[1024], link[1200], victim[1100], corpus[1100];
    moe_err err = {{0}};
    tmp_path(dir, sizeof dir, "tok");
    CHECK(mkdir(dir, 0755) == 0);
    snprintf(victim, sizeof victim, "%s/victim", test_tmpdir());
    snprintf(link, sizeof link, "%s/tokenizer.json.tmp", dir);
    plant(victim, link);
    snprintf(link, sizeof link, "%s/tokenizer_config.json.tmp", dir);
    CHECK(symlink(victim, link) == 0);
    snprintf(corpus, sizeof corpus, "%s/tokenizer_train/corpus.txt", test_fixtures());
    const char *sp[] = {"<|endoftext|>"};
    moe_tokenizer_train_opts o = {.vocab_size = 300, .special = sp, .n_special = 1};
    const char *files[] = {corpus};
    CHECK_MSG(moe_tokenizer_train(&o, files, 1, dir, &err) == 0, "train: %s", err.msg);
    victim_intact(victim, "tokenizer training");
    moe_tokenizer *t = NULL;
    CHECK_MSG(moe_tokenizer_load(&t, dir, &err) == 0, "the trained tokenizer: %s", err.msg);
    moe_tokenizer_free(t);
}

TEST(files_data_prepare_replaces_the_set) {
    char dir[1024], link[1200], victim[1100], text[1100], tok[1100], p[1200];
    moe_err err = {{0}};
    tmp_path(dir, sizeof dir, "shards");
    CHECK(mkdir(dir, 0755) == 0);
    snprintf(victim, sizeof victim, "%s/victim", test_tmpdir());
    static const char *const names[] = {"train.bin", "val.bin", "meta.json", "documents.jsonl"};
    for (int i = 0; i < 4; i++) {
        snprintf(link, sizeof link, "%s/%s.tmp", dir, names[i]);
        if (i == 0) plant(victim, link);
        else CHECK(symlink(victim, link) == 0);
    }
    tmp_path(text, sizeof text, "docs.txt");
    CHECK(write_text(text, "one document\n\nanother one\n\na third\n\nand a fourth\n") == 0);
    snprintf(tok, sizeof tok, "%s/tokenizer_train/trained", test_fixtures());
    const char *files[] = {text};
    moe_data_domain_spec spec = {"web", files, 1};
    moe_data_prep_opts o = {.tokenizer = tok, .out_dir = dir, .domain = &spec, .n_domains = 1,
                        .val_frac = 0.5, .seed = 1, .n_threads = 1, .list_docs = 1};
    moe_data_prep_progress res;
    CHECK_MSG(moe_data_prepare(&o, &res, &err) == 0, "data_prepare: %s", err.msg);
    victim_intact(victim, "data_prepare");
    for (int i = 0; i < 4; i++) {
        struct stat sb;
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        CHECK_MSG(lstat(p, &sb) == 0 && S_ISREG(sb.st_mode), "%s missing", names[i]);
    }
    snprintf(p, sizeof p, "%s/train.bin", dir);
    data_shard sh;
    CHECK_MSG(data_open(&sh, p, &err) == 0, "train.bin: %s", err.msg);
    data_close(&sh);

    /* a refused run leaves the old set and no temporary files */
    size_t nb = 0, na = 0;
    char *before = slurp_n(p, &nb), *meta_before = NULL;
    snprintf(p, sizeof p, "%s/meta.json", dir);
    meta_before = slurp(p);
    for (int i = 0; i < 4; i++) {
        snprintf(link, sizeof link, "%s/%s.tmp", dir, names[i]);
        unlink(link);
    }
    const char *bad[] = {text, "/nonexistent/file.txt"};
    spec.files = bad;
    spec.n_files = 2;
    CHECK(moe_data_prepare(&o, &res, &err) != 0);
    char *meta_after = slurp(p);
    snprintf(p, sizeof p, "%s/train.bin", dir);
    char *after = slurp_n(p, &na);
    CHECK(before && after && na == nb && memcmp(before, after, nb) == 0);
    CHECK(meta_before && meta_after && strcmp(meta_before, meta_after) == 0);
    CHECK_EQ_INT(temp_files_left(dir), 0);
    free(before);
    free(after);
    free(meta_before);
    free(meta_after);
}

/* mapped_open_weights: MOE_LOAD=read puts the bytes in an anonymous region
 * starting on a 2 MiB boundary, MOE_LOAD=mmap maps the file, and a small
 * file is mapped by default; the bytes are the file's either way. */
TEST(files_weights_read_into_memory_or_mapped) {
    char p[512];
    tmp_path(p, sizeof p, "weights.bin");
    size_t n = (3u << 20) + 123;
    unsigned char *want = malloc(n);
    for (size_t i = 0; i < n; i++) want[i] = (unsigned char)(i * 2654435761u >> 13);
    FILE *f = fopen(p, "wb");
    CHECK(f && fwrite(want, 1, n, f) == n);
    if (f) fclose(f);
    const char *modes[3] = {"read", "mmap", NULL};
    for (int k = 0; k < 3; k++) {
        if (modes[k]) setenv("MOE_LOAD", modes[k], 1);
        else unsetenv("MOE_LOAD");
        mapped_file m;
        moe_err err = {{0}};
        CHECK_MSG(mapped_open_weights(&m, p, &err) == 0, "%s", err.msg);
        CHECK(m.size == n && m.data && !memcmp(m.data, want, n));
        if (k == 0) CHECK(m.span >= n && ((uintptr_t)m.data & ((2u << 20) - 1)) == 0);
        else CHECK(m.span == 0); /* mapped: forced, or below the 64 MiB from which reading pays */
        mapped_close(&m);
    }
    unsetenv("MOE_LOAD");
    free(want);
    unlink(p);
}

/* A model read into memory gives the same logits, bit for bit, as mapped
 * (a GGUF file and a safetensors directory). */
TEST(files_weights_read_or_mapped_same_logits) {
    const char *models[2] = {"gguf_models/mixtral_f32.gguf", "models/mixtral_base"};
    static const int32_t ids[5] = {1, 7, 42, 3, 99};
    for (int k = 0; k < 2; k++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", test_fixtures(), models[k]);
        int V1 = 0, V2 = 0;
        setenv("MOE_LOAD", "mmap", 1);
        float *a = test_model_logits(path, ids, 5, &V1);
        setenv("MOE_LOAD", "read", 1);
        float *b = test_model_logits(path, ids, 5, &V2);
        unsetenv("MOE_LOAD");
        CHECK_MSG(a && b && V1 == V2 && !memcmp(a, b, sizeof(float) * (size_t)V1 * 5), "%s", models[k]);
        free(a), free(b);
    }
}
