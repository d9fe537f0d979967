/* test.c — the shared part of test.h. */
#include "test.h"

int test_failures;
int test_checks;
const char *test_current;

int test_report(void) {
    printf("%d passed, %d failed\n", test_checks - test_failures,
           test_failures);
    return test_failures == 0 ? 0 : 1;
}

#define MAX_VARS 64
static struct {
    char name[1200];
    char value[1200];
} vars[MAX_VARS];
static int nvars = -1;

static void load_state_file(void) {
    const char *dir = getenv("SG_TEST_STATE");
    char path[4096], line[1200];
    FILE *f;
    nvars = 0;
    if (dir == NULL) return;
    snprintf(path, sizeof path, "%s/servers.env", dir);
    f = fopen(path, "r");
    if (f == NULL) return;
    while (nvars < MAX_VARS && fgets(line, sizeof line, f)) {
        char *eq = strchr(line, '=');
        size_t n;
        if (eq == NULL || line[0] == '#') continue;
        *eq = '\0';
        n = strcspn(eq + 1, "\r\n");
        eq[1 + n] = '\0';
        snprintf(vars[nvars].name, sizeof vars[nvars].name, "%s", line);
        snprintf(vars[nvars].value, sizeof vars[nvars].value, "%s", eq + 1);
        nvars++;
    }
    fclose(f);
}

const char *test_server_var(const char *name) {
    const char *v = getenv(name);
    int i;
    if (v && *v) return v;
    if (nvars < 0) load_state_file();
    for (i = 0; i < nvars; i++)
        if (strcmp(vars[i].name, name) == 0) return vars[i].value;
    fprintf(stderr,
            "FAIL: %s is not set and not in $SG_TEST_STATE/servers.env "
            "(SG_TEST_STATE=%s): are the harness's servers running? "
            "(tests/harness/servers.sh start DIR)\n",
            name, getenv("SG_TEST_STATE") ? getenv("SG_TEST_STATE") : "unset");
    printf("0 passed, 1 failed\n");
    exit(1);
}

void test_split_addr(const char *addr, char *host, size_t hostlen, int *port) {
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || (size_t)(colon - addr) >= hostlen) {
        fprintf(stderr, "FAIL: bad address \"%s\"\n", addr);
        exit(1);
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    *port = atoi(colon + 1);
}

const char **test_env_lines(char *text) {
    static const char *envp[32];
    char *p, *save = NULL;
    int n = 0;
    for (p = text ? strtok_r(text, "\n", &save) : NULL; p && n < 31;
         p = strtok_r(NULL, "\n", &save))
        envp[n++] = p;
    envp[n] = NULL;
    return envp;
}
