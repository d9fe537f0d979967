/*
 * test.h — a tiny test framework: asserts that print both sides, a count of
 * checks, and access to the servers the harness started.
 */
#ifndef SG_TEST_H
#define SG_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern int test_failures;
extern int test_checks;
extern const char *test_current;

#define TEST_FAIL_(...)                                                        \
    do {                                                                       \
        test_failures++;                                                       \
        fprintf(stderr, "%s:%d: [%s] ", __FILE__, __LINE__,                    \
                test_current ? test_current : "-");                            \
        fprintf(stderr, __VA_ARGS__);                                          \
        fputc('\n', stderr);                                                   \
    } while (0)

#define CHECK(cond)                                                            \
    do {                                                                       \
        test_checks++;                                                         \
        if (!(cond)) TEST_FAIL_("check failed: %s", #cond);                    \
    } while (0)

#define CHECK_INT(a, b)                                                        \
    do {                                                                       \
        long long a_ = (long long)(a), b_ = (long long)(b);                    \
        test_checks++;                                                         \
        if (a_ != b_)                                                          \
            TEST_FAIL_("%s == %s: got %lld, expected %lld", #a, #b, a_, b_);   \
    } while (0)

#define CHECK_STR(a, b)                                                        \
    do {                                                                       \
        const char *a_ = (a), *b_ = (b);                                       \
        test_checks++;                                                         \
        if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0)                   \
            TEST_FAIL_("%s == %s: got \"%s\", expected \"%s\"", #a, #b,        \
                       a_ ? a_ : "(null)", b_ ? b_ : "(null)");                \
    } while (0)

/* a contains b */
#define CHECK_CONTAINS(a, b)                                                   \
    do {                                                                       \
        const char *a_ = (a), *b_ = (b);                                       \
        test_checks++;                                                         \
        if (a_ == NULL || b_ == NULL || strstr(a_, b_) == NULL)                \
            TEST_FAIL_("%s contains %s: \"%s\" lacks \"%s\"", #a, #b,          \
                       a_ ? a_ : "(null)", b_ ? b_ : "(null)");                \
    } while (0)

/* Runs one named test function. */
#define RUN(fn)                                                                \
    do {                                                                       \
        test_current = #fn;                                                    \
        fn();                                                                  \
        test_current = NULL;                                                   \
    } while (0)

/* Prints "N passed, N failed" (checks) and returns the exit status. */
int test_report(void);

/* The value of a harness variable (SG_TEST_CLUSTER, SG_TEST_STANDALONE, ...):
 * from the environment, else from $SG_TEST_STATE/servers.env. Exits the test
 * with a failure when it is missing: a test that needs a server it cannot
 * find fails. Returned string is static per name. */
const char *test_server_var(const char *name);

/* Splits text (owned by the caller, modified) into "NAME=value" lines for an
 * env array: a static NULL-terminated array of at most 31 entries. */
const char **test_env_lines(char *text);

/* Splits "host:port" into host (static buffer) and port; exits on error. */
void test_split_addr(const char *addr, char *host, size_t hostlen, int *port);

#endif
