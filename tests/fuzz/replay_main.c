/*
 * replay_main.c — runs a libFuzzer target over every file of a corpus
 * directory, without libFuzzer: the corpus as a regression test under any
 * compiler (gcc, the sanitizer build). Prints "N passed, 0 failed"; a crash or
 * an abort in the target fails the test.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv) {
    DIR *dir;
    struct dirent *e;
    int n = 0;
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
        LLVMFuzzerTestOneInput(buf, (size_t)len);
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
