/*
 * file_list.h - input file lists for the commands that read text corpora
 * (`moe tokenizer train`, `moe data`): a directory argument stands for its
 * regular files (sorted by name, hidden ones skipped, not recursive), and
 * options that may repeat (--special, --domain) are pulled out of argv
 * before the one-value-per-option parser of args.h sees it.
 */
#ifndef MOE_CLI_FILE_LIST_H
#define MOE_CLI_FILE_LIST_H

/* A growable list of malloc'd strings. */
typedef struct file_list {
    char **v;
    int n, cap;
} file_list;

/* Append path, or a directory's regular files. 0, or -1 (printed as "moe CMD: ..."). */
int file_list_add(const char *cmd, file_list *l, const char *path);
void file_list_free(file_list *l);

/* Move every "NAME VALUE" / "NAME=VALUE" before a "--" out of argv into
 * values (pointers into argv); argv and *argc keep the rest in order.
 * -1 (printed) if NAME has no value or there are more than max. */
int take_repeated(const char *cmd, const char *name, int *argc, char **argv, const char **values,
                  int *n, int max);

/* mkdir -p. 0, or -1 (printed). */
int make_dirs(const char *cmd, const char *path);

#endif
