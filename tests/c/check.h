/* The C tests' checks: count every check, report each failure with its place, keep going.
 * Each test program ends with printf("%d checks, %d failures\n", checks, failures), which
 * its pytest driver reads. */
#ifndef TESTS_CHECK_H
#define TESTS_CHECK_H

#include <stdio.h>

static int checks, failures;

#define CHECK(c)                                                          \
	do {                                                              \
		checks++;                                                 \
		if (!(c)) {                                               \
			failures++;                                       \
			fprintf(stderr, "%s:%d: CHECK(%s) failed\n",      \
				__FILE__, __LINE__, #c);                  \
		}                                                         \
	} while (0)

#define CHECK_EQ(a, b)                                                    \
	do {                                                              \
		long long a_ = (long long)(a), b_ = (long long)(b);       \
		checks++;                                                 \
		if (a_ != b_) {                                           \
			failures++;                                       \
			fprintf(stderr, "%s:%d: %s == %lld, want %s == %lld\n", \
				__FILE__, __LINE__, #a, a_, #b, b_);      \
		}                                                         \
	} while (0)

#endif
