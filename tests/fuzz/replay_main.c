/*
 * replay_main.c — runs a libFuzzer target over every file of a corpus
 * directory, without libFuzzer: the corpus as a regression test under any
 * compiler (gcc, the sanitizer build). Prints "N passed, 0 failed"; a crash or
 * an abort in the target fails the test, naming the file that did it.
 */
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The sanitizers' hook for "about to exit after a report", when linked in. */
void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

static char current[4096]; /* the file being replayed */

static void say_which(void) {
    static const char pre[] = "replay: failed on ";
    size_t n = strlen(current);
    if (n == 0 || write(2, pre, sizeof pre - 1) < 0 || write(2, current, n) < 0) return;
    if (write(2, "\n", 1) < 0) return;
}

static void on_signal(int sig) {
    say_which();
    signal(sig, SIG_DFL);
    raise(sig);
}

int main(int argc, char **argv) {
    DIR *dir;
    struct dirent *e;
    int n = 0;
    if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(say_which);
    signal(SIGABRT, on_signal);
    signal(SIGSEGV, on_signal);
    signal(SIGBUS, on_signal);
    signal(SIGFPE, on_signal);
    if (argc != 2 || (dir = opendir(argv[1])) == NULL) {
        fprintf(stderr, "usage: %s CORPUS_DIR (cannot open it)\n", argv[0]);
        printf("0 passed, 1 failed\n");
        return 1;
    }
    while ((e = readdir(dir)) != NULL) {
        char path[4096];
        FILE *f;
        long len;
        uint8_t *buf;
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", argv[1], e->d_name);
        if ((f = fopen(path, "rb")) == NULL) continue;
        fseek(f, 0, SEEK_END);
        len = ftell(f);
        fseek(f, 0, SEEK_SET);
        buf = malloc(len > 0 ? (size_t)len : 1);
        if (buf == NULL || fread(buf, 1, (size_t)len, f) != (size_t)len) {
            fprintf(stderr, "cannot read %s\n", path);
            printf("%d passed, 1 failed\n", n);
            return 1;
        }
        fclose(f);
        snprintf(current, sizeof current, "%s", path);
        LLVMFuzzerTestOneInput(buf, (size_t)len);
        current[0] = '\0';
        free(buf);
        n++;
    }
    closedir(dir);
    if (n == 0) {
        fprintf(stderr, "%s: no corpus files\n", argv[1]);
        printf("0 passed, 1 failed\n");
        return 1;
    }
    printf("%d passed, 0 failed\n", n);
    return 0;
}
