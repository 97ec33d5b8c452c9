/*
 * http.c - HTTP/1.1 request parser and server (see http.h).
 *
 * Each TCP connection gets a request buffer. Requests are parsed from its
 * start once the blank line is in; one request is answered at a time, and
 * the next pipelined one only when the send buffer has room for a whole
 * response head plus a small body. Static bodies (from the kv store) are
 * streamed as ACKs free the send buffer.
 */
#include "net.h"
#include "tcp.h"
#include "http.h"

struct http_stats http_stats;

/* ---- Parser ------------------------------------------------------------- */

static bool is_tchar(unsigned char ch)
{
	if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9'))
		return true;
	switch (ch) {
	case '!': case '#': case '$': case '%': case '&': case '\'':
	case '*': case '+': case '-': case '.': case '^': case '_':
	case '`': case '|': case '~':
		return true;
	}
	return false;
}

static char lower(char ch)
{
	return (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
}

/* Case-insensitive: s[0..n) equals the lower-case literal lit. */
static bool ieq(const char *s, size_t n, const char *lit)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!lit[i] || lower(s[i]) != lit[i])
			return false;
	return lit[n] == '\0';
}

/* Does the comma-separated list s[0..n) contain token tok? */
static bool has_token(const char *s, size_t n, const char *tok)
{
	size_t i = 0;

	while (i < n) {
		size_t a, b;
		while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == ','))
			i++;
		a = i;
		while (i < n && s[i] != ',')
			i++;
		b = i;
		while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t'))
			b--;
		if (b > a && ieq(s + a, b - a, tok))
			return true;
	}
	return false;
}

/* Offset just past the blank line ending the head, or 0. */
static size_t head_end(const char *buf, size_t from, size_t len)
{
	size_t i;

	for (i = from; i < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (i + 1 < len && buf[i + 1] == '\n')
			return i + 2;
		if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

/* Next line in [*pos, end): sets line/n without CR LF, advances *pos.
 * -1 when a CR appears anywhere but right before the LF. */
static int next_line(const char *buf, size_t *pos, size_t end,
		     const char **line, size_t *n)
{
	size_t i = *pos, a = *pos;

	while (i < end && buf[i] != '\n')
		i++;
	if (i >= end)
		return -1;
	*pos = i + 1;
	if (i > a && buf[i - 1] == '\r')
		i--;
	*line = buf + a;
	*n = i - a;
	for (i = 0; i < *n; i++)
		if ((*line)[i] == '\r')
			return -1;
	return 0;
}

/* Length of a complete chunked body (RFC 9112 7.1) at p[0..n): chunks,
 * the last (size 0) chunk, trailer fields, blank line. 0 while
 * incomplete, -400 malformed, -413 a chunk larger than max. */
static long chunked_len(const char *p, size_t n, size_t max)
{
	size_t pos = 0;

	for (;;) {
		size_t size = 0, digits = 0;

		while (pos < n && hexval(p[pos]) >= 0) {
			size = size * 16 + (size_t)hexval(p[pos++]);
			if (size > max)
				return -413;
			digits++;
		}
		if (pos >= n)
			return 0;
		if (!digits || (p[pos] != ';' && p[pos] != '\r' && p[pos] != '\n' &&
				p[pos] != ' ' && p[pos] != '\t'))
			return -400;
		while (pos < n && p[pos] != '\n') {	/* chunk extensions */
			if (p[pos] == '\0')
				return -400;
			pos++;
		}
		if (pos++ >= n)
			return 0;
		if (size == 0)
			break;
		if (size > n - pos)
			return 0;
		pos += size;
		if (pos < n && p[pos] == '\r')
			pos++;
		if (pos >= n)
			return 0;
		if (p[pos++] != '\n')
			return -400;
	}
	for (;;) {		/* trailer section, ends with a blank line */
		size_t a = pos;

		while (pos < n && p[pos] != '\n')
			pos++;
		if (pos++ >= n)
			return 0;
		if (pos - a == 1 || (pos - a == 2 && p[a] == '\r'))
			return (long)pos;
	}
}

long http_parse(const char *buf, size_t len, size_t max, struct http_req *r)
{
	size_t pos = 0, end, n, i, sp1, sp2, cl = 0;
	const char *line, *tgt;
	bool have_cl = false, have_host = false, te = false, chunked = false;
	bool conn_close = false, conn_keep = false;
	int nhdr = 0, method = 0;

	memset(r, 0, sizeof(*r));
	/* RFC 9112 2.2: ignore a few empty lines before the request. */
	while (pos < len && pos < 4 && (buf[pos] == '\r' || buf[pos] == '\n'))
		pos++;
	end = head_end(buf, pos, len);
	if (!end) {
		if (len >= max) {
			/* The head does not fit: the request line itself
			 * (414) or the header fields (431, RFC 6585 5). */
			for (i = pos; i < len && buf[i] != '\n'; i++)
				;
			return i >= len ? -414 : -431;
		}
		/* Refuse an overlong or binary request line early. */
		for (i = pos; i < len && buf[i] != '\n'; i++)
			if (buf[i] == '\0')
				return -400;
		return 0;
	}

	/* Request line: method SP target SP HTTP/1.x */
	if (next_line(buf, &pos, end, &line, &n) < 0 || n == 0)
		return -400;
	for (sp1 = 0; sp1 < n && line[sp1] != ' '; sp1++)
		if (!is_tchar((unsigned char)line[sp1]))
			return -400;
	if (sp1 == 0 || sp1 >= n)
		return -400;
	for (sp2 = sp1 + 1; sp2 < n && line[sp2] != ' '; sp2++) {
		unsigned char ch = (unsigned char)line[sp2];
		if (ch <= 0x20 || ch >= 0x7f)
			return -400;
	}
	if (sp2 == sp1 + 1 || sp2 >= n)
		return -400;
	if (n - sp2 - 1 != 8 || memcmp(line + sp2 + 1, "HTTP/", 5) != 0 ||
	    line[sp2 + 7] != '.' || line[sp2 + 6] < '0' || line[sp2 + 6] > '9' ||
	    line[sp2 + 8] < '0' || line[sp2 + 8] > '9')
		return -400;
	if (line[sp2 + 6] != '1')
		return -505;
	r->minor = line[sp2 + 8] - '0';
	if (sp1 == 3 && memcmp(line, "GET", 3) == 0)
		method = HTTP_GET;
	else if (sp1 == 4 && memcmp(line, "HEAD", 4) == 0)
		method = HTTP_HEAD;
	tgt = line + sp1 + 1;
	n = sp2 - sp1 - 1;	/* target length */
	r->path = tgt;
	r->path_len = n;
	if (n > 7 && ieq(tgt, 7, "http://")) {
		/* absolute-form (RFC 9112 3.2.2): the path starts after the
		 * authority; an empty one is "/". */
		for (i = 7; i < n && tgt[i] != '/' && tgt[i] != '?'; i++)
			;
		if (i == 7)
			return -400;	/* no authority */
		if (i < n && tgt[i] == '/') {
			r->path = tgt + i;
			r->path_len = n - i;
		} else {
			r->path = "/";
			r->path_len = 1;
			if (i < n) {	/* "http://h?q" */
				r->query = tgt + i + 1;
				r->query_len = n - i - 1;
			}
		}
	} else if (tgt[0] != '/') {
		return method ? -400 : -405;
	}
	for (i = 0; i < r->path_len; i++) {
		if (r->path[i] == '?') {
			r->query = r->path + i + 1;
			r->query_len = r->path_len - i - 1;
			r->path_len = i;
			break;
		}
	}
	/* A fragment never reaches a server; refuse it rather than guess. */
	for (i = 0; i < r->path_len; i++)
		if (r->path[i] == '#')
			return -400;

	/* Header fields. */
	for (;;) {
		const char *v;
		size_t colon, vn;

		if (next_line(buf, &pos, end, &line, &n) < 0)
			return -400;
		if (n == 0)
			break;
		if (++nhdr > HTTP_MAX_HEADERS)
			return -431;
		if (line[0] == ' ' || line[0] == '\t')
			return -400;	/* obsolete line folding */
		for (colon = 0; colon < n && line[colon] != ':'; colon++)
			if (!is_tchar((unsigned char)line[colon]))
				return -400;
		if (colon == 0 || colon >= n)
			return -400;
		v = line + colon + 1;
		vn = n - colon - 1;
		while (vn && (*v == ' ' || *v == '\t')) {
			v++;
			vn--;
		}
		while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
			vn--;
		for (i = 0; i < vn; i++) {
			unsigned char ch = (unsigned char)v[i];
			if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
				return -400;
		}
		if (ieq(line, colon, "content-length")) {
			size_t val = 0;
			if (vn == 0)
				return -400;
			for (i = 0; i < vn; i++) {
				if (v[i] < '0' || v[i] > '9')
					return -400;
				if (val > max)	/* stop before overflow */
					continue;
				val = val * 10 + (size_t)(v[i] - '0');
			}
			if (have_cl && val != cl)
				return -400;
			have_cl = true;
			cl = val;
		} else if (ieq(line, colon, "transfer-encoding")) {
			/* Only "chunked" alone: other codings are 501. */
			if (te || !ieq(v, vn, "chunked"))
				te = true;
			else
				chunked = true;
		} else if (ieq(line, colon, "connection")) {
			conn_close |= has_token(v, vn, "close");
			conn_keep |= has_token(v, vn, "keep-alive");
		} else if (ieq(line, colon, "host")) {
			if (have_host)
				return -400;
			have_host = true;
		}
	}
	if (r->minor >= 1 && !have_host)
		return -400;	/* RFC 9112 3.2 */
	if (te)
		return -501;
	if (chunked && have_cl)
		return -400;	/* RFC 9112 6.1: request smuggling risk */
	if (!method)
		return -405;
	if (cl > max || end + cl > max)
		return -413;
	r->method = (enum http_method)method;
	r->content_length = cl;
	r->head_len = end;
	r->keep_alive = r->minor >= 1 ? !conn_close : (conn_keep && !conn_close);
	if (chunked) {
		long body = chunked_len(buf + end, len - end, max);
		if (body < 0)
			return body;
		if (body == 0) {
			r->chunked = true;
			return len >= max ? -413 : 0;
		}
		if (end + (size_t)body > max)
			return -413;
		return (long)end + body;
	}
	if (len < end + cl)
		return 0;
	return (long)(end + cl);
}


long http_pct_decode(const char *s, size_t n, char *out, size_t cap, bool plus)
{
	size_t i, o = 0;

	if (cap == 0)
		return -2;
	for (i = 0; i < n; i++) {
		char ch = s[i];
		if (ch == '%') {
			int h, l;
			if (n - i < 3)
				return -1;
			h = hexval(s[i + 1]);
			l = hexval(s[i + 2]);
			if (h < 0 || l < 0)
				return -1;
			ch = (char)(h << 4 | l);
			i += 2;
		} else if (plus && ch == '+') {
			ch = ' ';
		}
		if (o + 1 >= cap)
			return -2;
		out[o++] = ch;
	}
	out[o] = '\0';
	return (long)o;
}

int http_query_check(const char *q, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (q[i] != '%')
			continue;
		if (n - i < 3 || hexval(q[i + 1]) < 0 || hexval(q[i + 2]) < 0)
			return -1;
		i += 2;
	}
	return 0;
}

int http_query_get(const char *q, size_t n, const char *name, char *out,
		   size_t cap, size_t *outlen)
{
	size_t i = 0;

	while (q && i < n) {
		size_t a = i, eq, e;
		char nb[64];
		long k;

		while (i < n && q[i] != '&')
			i++;
		e = i++;
		for (eq = a; eq < e && q[eq] != '='; eq++)
			;
		k = http_pct_decode(q + a, eq - a, nb, sizeof(nb), true);
		if (k == -1)
			return -1;
		if (k < 0 || strcmp(nb, name) != 0 || (size_t)k != strlen(nb))
			continue;
		if (eq == e) {
			k = http_pct_decode("", 0, out, cap, true);
		} else {
			k = http_pct_decode(q + eq + 1, e - eq - 1, out, cap, true);
		}
		if (k < 0)
			return (int)k;
		if (outlen)
			*outlen = (size_t)k;
		return 1;
	}
	return 0;
}

const char *http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 301: return "Moved Permanently";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}

/* ---- Server ------------------------------------------------------------- */

struct http_conn {
	struct tcp_conn *tc;	/* NULL: slot free */
	http_handler h;
	const uint8_t *out;	/* static body still to send */
	size_t outlen;
	bool close_after;	/* close once out is sent */
	bool eof;		/* the peer sent FIN */
	bool deferred;		/* the turn's budget ran out: more to answer */
	uint64_t req_start;	/* first byte of the pending request */
	uint64_t last_active;
	size_t scan;		/* no end of head before this offset */
	size_t need;		/* head parsed: bytes the request needs */
	size_t len;
	char req[HTTP_REQ_MAX];
};

static struct http_conn hconns[TCP_MAX_CONN];
static struct {
	uint16_t port;
	http_handler h;
} servers[TCP_MAX_LISTEN];

static void hc_close(struct http_conn *hc)
{
	struct tcp_conn *tc = hc->tc;

	hc->tc = NULL;
	if (tc)
		tcp_close(tc);
}

/* Send as much of the pending static body as fits. */
static void pump(struct http_conn *hc)
{
	if (hc->outlen) {
		size_t n = tcp_send(hc->tc, hc->out, hc->outlen);
		hc->out += n;
		hc->outlen -= n;
	}
	if (!hc->outlen && hc->close_after)
		hc_close(hc);
}

static void respond(struct http_conn *hc, bool head, int minor,
		    struct http_resp *rs)
{
	char hdr[HTTP_HDR_MAX];
	int n;

	n = fmt(hdr, sizeof(hdr),
		"HTTP/1.1 %d %s\r\n"
		"Content-Type: %s\r\n"
		"Content-Length: %zu\r\n"
		"%s%s\r\n",
		rs->status, http_reason(rs->status),
		rs->ctype ? rs->ctype : "text/plain; charset=utf-8", rs->len,
		hc->close_after ? "Connection: close\r\n" :
		minor == 0 ? "Connection: keep-alive\r\n" : "",
		rs->extra ? rs->extra : "");
	if (n < 0 || (size_t)n >= sizeof(hdr)) {
		/* Cannot happen with our headers; fail safe. */
		hc->close_after = true;
		pump(hc);
		return;
	}
	tcp_send(hc->tc, hdr, (size_t)n);
	http_stats.responses++;
	if (head || !rs->len) {
		pump(hc);
		return;
	}
	if ((const char *)rs->body >= rs->buf &&
	    (const char *)rs->body < rs->buf + sizeof(rs->buf)) {
		/* Built by the handler in rs->buf: copy now (room was
		 * checked before the handler ran). */
		tcp_send(hc->tc, rs->body, MIN(rs->len, sizeof(rs->buf)));
	} else {
		hc->out = rs->body;
		hc->outlen = rs->len;
	}
	pump(hc);
}

static void respond_error(struct http_conn *hc, int status)
{
	struct http_resp rs;
	const char *reason = http_reason(status);
	int n;

	memset(&rs, 0, offsetof(struct http_resp, buf));
	http_stats.errors++;
	rs.status = status;
	n = fmt(rs.buf, sizeof(rs.buf), "%s\n", reason);
	rs.body = rs.buf;
	rs.len = (size_t)n;
	if (status == 405)
		rs.extra = "Allow: GET, HEAD\r\n";
	hc->close_after = true;
	hc->len = hc->scan = hc->need = 0;
	respond(hc, false, 1, &rs);
}

/* Answer the complete requests in the buffer, at most
 * HTTP_REQS_PER_TURN of them (one segment full of pipelined requests must
 * not block the unikernel); on_poll and on_sent resume. */
static void process(struct http_conn *hc)
{
	uint64_t now = net_now_ms();
	bool more = false;
	int budget = HTTP_REQS_PER_TURN;

	hc->deferred = false;
	while (hc->tc && !hc->outlen && !hc->close_after) {
		struct http_req req;
		struct http_resp rs;
		long n;

		/* Parse only once the head (and body) can be complete, so a
		 * request dribbling in byte by byte costs linear time. */
		if (hc->len < hc->need)
			break;
		if (!hc->need && hc->len < HTTP_REQ_MAX &&
		    !head_end(hc->req, hc->scan > 3 ? hc->scan - 3 : 0, hc->len)) {
			hc->scan = hc->len;
			break;
		}
		n = http_parse(hc->req, hc->len, HTTP_REQ_MAX, &req);
		if (n == 0) {
			hc->scan = hc->len;
			hc->need = req.chunked ? hc->len + 1 :	/* any more bytes */
				   req.head_len ? req.head_len + req.content_length : 0;
			break;
		}
		if (tcp_send_space(hc->tc) < HTTP_HDR_MAX + HTTP_BODY_BUF) {
			more = true;	/* resumed from the sent callback */
			break;
		}
		if (budget-- == 0) {
			more = hc->deferred = true;	/* resumed from on_poll */
			break;
		}
		if (n < 0) {
			respond_error(hc, (int)-n);
			return;
		}
		http_stats.requests++;
		req.peer = hc->tc->rip;
		memset(&rs, 0, offsetof(struct http_resp, buf));
		rs.status = 200;
		if (req.query && http_query_check(req.query, req.query_len) < 0) {
			respond_error(hc, 400);
			return;
		}
		hc->h(&req, &rs);
		if (rs.len > HTTP_BODY_BUF && (const char *)rs.body >= rs.buf &&
		    (const char *)rs.body < rs.buf + sizeof(rs.buf))
			rs.len = HTTP_BODY_BUF;
		if (!req.keep_alive)
			hc->close_after = true;
		respond(hc, req.method == HTTP_HEAD, req.minor, &rs);
		/* The request's bytes are no longer referenced: drop them. */
		memmove(hc->req, hc->req + n, hc->len - (size_t)n);
		hc->len -= (size_t)n;
		hc->scan = hc->need = 0;
		hc->req_start = hc->len ? now : 0;
		hc->last_active = now;
	}
	if (hc->tc && hc->eof && !hc->outlen && !hc->close_after && !more) {
		/* Peer is done sending and every complete request is
		 * answered: what is left can never complete. */
		hc_close(hc);
	}
}

static struct http_conn *hc_of(struct tcp_conn *c)
{
	return c->arg;
}

static void on_accept(struct tcp_conn *c)
{
	struct http_conn *hc = &hconns[tcp_conn_index(c)];
	int i;

	hc->tc = c;
	hc->h = NULL;
	for (i = 0; i < TCP_MAX_LISTEN; i++)
		if (servers[i].h && servers[i].port == c->lport)
			hc->h = servers[i].h;
	if (!hc->h) {
		hc->tc = NULL;
		tcp_abort(c);
		return;
	}
	hc->out = NULL;
	hc->outlen = 0;
	hc->close_after = false;
	hc->eof = false;
	hc->deferred = false;
	hc->len = hc->scan = hc->need = 0;
	hc->req_start = 0;
	hc->last_active = net_now_ms();
	c->arg = hc;
	http_stats.conns++;
}

static size_t on_recv(struct tcp_conn *c, const uint8_t *p, size_t n)
{
	struct http_conn *hc = hc_of(c);
	size_t take;

	if (!hc)
		return n;
	hc->last_active = net_now_ms();
	if (n == 0) {
		hc->eof = true;
		process(hc);
		return 0;
	}
	if (hc->close_after)
		return n;	/* answering an error: discard the rest */
	take = MIN(n, HTTP_REQ_MAX - hc->len);
	memcpy(hc->req + hc->len, p, take);
	hc->len += take;
	if (!hc->req_start)
		hc->req_start = hc->last_active;
	process(hc);
	return take;
}

static void on_sent(struct tcp_conn *c)
{
	struct http_conn *hc = hc_of(c);

	if (!hc)
		return;
	hc->last_active = net_now_ms();	/* the peer is reading */
	pump(hc);
	if (!hc->tc)
		return;
	process(hc);
	if (hc->tc)
		tcp_recved(c);
}

static void on_closed(struct tcp_conn *c)
{
	struct http_conn *hc = hc_of(c);

	if (hc)
		hc->tc = NULL;
}

static void on_poll(struct tcp_conn *c, uint64_t now)
{
	struct http_conn *hc = hc_of(c);

	if (!hc)
		return;
	if (hc->deferred && !hc->outlen) {
		process(hc);
		if (!hc->tc)
			return;
		tcp_recved(c);
	}
	if (hc->outlen) {
		/* A body is stuck behind a peer that does not read. */
		if (now - hc->last_active > HTTP_IDLE_TIMEOUT_MS) {
			http_stats.timeouts++;
			hc->tc = NULL;
			tcp_abort(c);
		}
		return;
	}
	if (hc->close_after)
		return;
	if (hc->len && now - hc->req_start > HTTP_REQ_TIMEOUT_MS) {
		struct http_req r;

		/* Still incomplete (slowloris): 408. A complete request
		 * merely waiting for send space is the peer's slow reading,
		 * handled by the idle check below. */
		if (http_parse(hc->req, hc->len, HTTP_REQ_MAX, &r) == 0) {
			http_stats.timeouts++;
			if (tcp_send_space(c) >= HTTP_HDR_MAX + HTTP_BODY_BUF)
				respond_error(hc, 408);
			else
				hc_close(hc);
			return;
		}
	}
	if (now - hc->last_active > HTTP_IDLE_TIMEOUT_MS) {
		http_stats.timeouts++;
		if (hc->len) {
			hc->tc = NULL;
			tcp_abort(c);
		} else {
			hc_close(hc);
		}
	}
}

static size_t on_rcv_space(struct tcp_conn *c)
{
	struct http_conn *hc = hc_of(c);

	if (!hc)
		return HTTP_REQ_MAX;
	if (hc->close_after)
		return 65535;	/* discarding */
	return HTTP_REQ_MAX - hc->len;
}

static const struct tcp_ops http_ops = {
	.accept = on_accept,
	.recv = on_recv,
	.sent = on_sent,
	.closed = on_closed,
	.poll = on_poll,
	.rcv_space = on_rcv_space,
};

int http_serve(uint16_t port, http_handler h)
{
	int i;

	for (i = 0; i < TCP_MAX_LISTEN; i++) {
		if (!servers[i].h || servers[i].port == port) {
			servers[i].port = port;
			servers[i].h = h;
			return tcp_listen(port, &http_ops);
		}
	}
	return -1;
}
