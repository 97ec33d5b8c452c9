/*
 * http.h - a small HTTP/1.1 server (RFC 9110/9112) over tcp.h.
 *
 * GET and HEAD only; request line + headers (+ a Content-Length or
 * chunked body, read and ignored) must fit in HTTP_REQ_MAX bytes. Origin-
 * and absolute-form targets. Keep-alive by default for HTTP/1.1,
 * "Connection: close" honoured, pipelined requests answered in order.
 * Every response carries Content-Length. Errors: 400 malformed, 404, 405
 * other methods, 408 request too slow, 413 body too large, 414 request
 * line too long, 431 header fields too large or too many, 501 a transfer
 * coding other than chunked, 505 other HTTP versions; error responses
 * close the connection.
 */
#ifndef HTTP_H
#define HTTP_H

#include "rt.h"

#ifndef HTTP_REQ_MAX
#define HTTP_REQ_MAX 12288	/* an 8000-octet request line + ~100 fields */
#endif
#define HTTP_MAX_HEADERS 128
#define HTTP_BODY_BUF 512	/* room for a handler-built body */
#define HTTP_HDR_MAX 320	/* our response headers fit in this */
#define HTTP_REQ_TIMEOUT_MS 10000	/* a started request must complete */
#define HTTP_IDLE_TIMEOUT_MS 30000	/* idle keep-alive connection */
#define HTTP_REQS_PER_TURN 4	/* pipelined requests answered per event; the
				 * rest wait for the next timer tick */

enum http_method { HTTP_GET = 1, HTTP_HEAD = 2 };

struct http_req {
	enum http_method method;
	const char *path;	/* raw (still %-encoded), starts with '/' */
	size_t path_len;
	const char *query;	/* after '?', raw; NULL when absent */
	size_t query_len;
	int minor;		/* HTTP/1.<minor> */
	bool keep_alive;
	size_t content_length;
	size_t head_len;	/* request line + headers, once complete */
	uint32_t peer;		/* the client's address (host order) */
	bool chunked;		/* body in chunked coding (RFC 9112 7.1) */
};

/* Parse one request at the start of buf. Returns its total length
 * (headers and body) when complete, 0 when more bytes are needed, or
 * -status (-400, -405, -413, -414, -431, -501, -505) when it must be
 * refused. While a chunked body is incomplete, head_len is set and
 * chunked is true.
 * max is the most the caller can ever buffer. */
long http_parse(const char *buf, size_t len, size_t max, struct http_req *r);

/* Decode %XX escapes (and '+' as space when plus is true) of s[0..n) into
 * out (NUL-terminated). Returns the decoded length, -1 for an invalid
 * escape, -2 when it does not fit in cap - 1 bytes. */
long http_pct_decode(const char *s, size_t n, char *out, size_t cap, bool plus);
/* 0 when every escape in the query is valid, -1 otherwise. */
int http_query_check(const char *q, size_t n);
/* Find parameter name in a query and decode its value into out.
 * 1 found, 0 absent, -1 invalid escape, -2 too long. */
int http_query_get(const char *q, size_t n, const char *name, char *out,
		   size_t cap, size_t *outlen);

struct http_resp {
	int status;
	const char *ctype;	/* NULL: text/plain */
	const void *body;	/* static data, or buf */
	size_t len;
	const char *extra;	/* extra header lines ("Name: v\r\n"), or NULL */
	char buf[HTTP_BODY_BUF];
};

/* The app's handler: fill resp (status defaults to 200, body to empty). */
typedef void (*http_handler)(const struct http_req *req, struct http_resp *resp);

/* Serve handler on port. 0 ok, <0 no listener slot. */
int http_serve(uint16_t port, http_handler h);

const char *http_reason(int status);

struct http_stats {
	uint32_t requests, responses, errors, conns, timeouts;
};
extern struct http_stats http_stats;

#endif
