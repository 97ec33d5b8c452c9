/*
 * auth - HTTP on port 8088 against the baked-in user store:
 *   GET /any/path?user=U&password=P
 *     200 "hello U!\n"       the pair matches
 *     401 "Invalid login\n"  it does not
 *     401 "No user given\n"  a parameter is missing
 *
 * The store (appdata.py) holds per user "user/<name>" -> iterations (BE32)
 * || salt[16] || PBKDF2-HMAC-SHA256(password, salt, iterations)[32].
 * Unknown users cost the same PBKDF2 as known ones, the final compare is
 * constant time, and no password is ever printed. Failures are limited
 * per client address (429 once its token bucket is empty, see below).
 *
 * PBKDF2 makes every check deliberately slow, so a successful login is
 * remembered: a small cache keeps HMAC-SHA256(boot key, salt || password)
 * per user. A request with the same password then costs two HMAC blocks
 * instead of 2 * iterations compressions. Failures are never cached (each
 * costs the full PBKDF2), and the cache only lives in RAM.
 */
#include "../core/app.h"
#include "../core/http.h"
#include "../core/kv.h"
#include "../core/net.h"
#include "../core/platform.h"
#include "../core/sha256.h"

const char app_name[] = "auth";

#define AUTH_PORT 8088
#define SALT_LEN 16
#define REC_LEN (4 + SALT_LEN + SHA256_LEN)
#define USER_MAX 64
#define PASS_MAX 256
#define CACHE_SLOTS 16

struct auth_stats {
	uint32_t ok, bad, missing, pbkdf2, cache_hits, limited;
} auth_stats;

static struct {
	const struct kv_entry *user;
	uint8_t tag[SHA256_LEN];
} cache[CACHE_SLOTS];
static unsigned cache_next;
static uint8_t boot_key[32];

static void cache_tag(const uint8_t *salt, const char *pw, size_t pwlen,
		      uint8_t tag[SHA256_LEN])
{
	struct hmac_sha256 h;
	struct sha256 s;
	uint8_t ih[SHA256_LEN];

	hmac_sha256_init(&h, boot_key, sizeof(boot_key));
	s = h.inner;
	sha256_update(&s, salt, SALT_LEN);
	sha256_update(&s, pw, pwlen);
	sha256_final(&s, ih);
	s = h.outer;
	sha256_update(&s, ih, SHA256_LEN);
	sha256_final(&s, tag);
	memset(&h, 0, sizeof(h));
}

/* Stand-in record for unknown users: same cost, never matches. Its
 * iteration count is a stored user's (app_main), so a changed
 * MIRAGE_AUTH_PBKDF2_ITERATIONS does not tell known users by timing. */
static uint8_t dummy_rec[REC_LEN] = { 0, 0, 0x10, 0 };

/* Failed logins per client address, a token bucket: AUTH_FAIL_BURST
 * failures at once, then one per AUTH_FAIL_REFILL_MS; an address out of
 * tokens gets 429 without a PBKDF2 (online guessing is bounded). */
#define AUTH_FAIL_BURST 32
#define AUTH_FAIL_REFILL_MS 500
#define AUTH_FAIL_SLOTS 32
static struct {
	uint32_t ip, tokens;
	uint64_t at;		/* last refill */
} fails[AUTH_FAIL_SLOTS];

/* The address's bucket, refilled to now; a new one (full) replaces the
 * least recently used. */
static uint32_t *fail_tokens(uint32_t ip)
{
	uint64_t now = net_now_ms();
	int i, old = 0;

	for (i = 0; i < AUTH_FAIL_SLOTS; i++) {
		if (fails[i].ip == ip && fails[i].at) {
			uint64_t add = (now - fails[i].at) / AUTH_FAIL_REFILL_MS;
			if (add) {
				fails[i].tokens = (uint32_t)MIN(fails[i].tokens + add,
								(uint64_t)AUTH_FAIL_BURST);
				fails[i].at += add * AUTH_FAIL_REFILL_MS;
			}
			return &fails[i].tokens;
		}
		if (fails[i].at < fails[old].at)
			old = i;
	}
	fails[old].ip = ip;
	fails[old].tokens = AUTH_FAIL_BURST;
	fails[old].at = now ? now : 1;
	return &fails[old].tokens;
}

static bool check(const char *user, size_t ulen, const char *pw, size_t pwlen)
{
	char key[5 + USER_MAX];
	const struct kv_entry *e = NULL;
	const uint8_t *rec = dummy_rec;
	uint8_t dk[SHA256_LEN], tag[SHA256_LEN];
	uint32_t iter;
	bool ok;
	int i;

	if (ulen <= USER_MAX) {
		memcpy(key, "user/", 5);
		memcpy(key + 5, user, ulen);
		e = kv_get(key, 5 + ulen);
	}
	if (e && e->vallen == REC_LEN) {
		rec = e->val;
		/* unknown users then cost what a stored record costs (users on a
		 * disk may use another iteration count than the compiled-in ones) */
		memcpy(dummy_rec, rec, 4);
	} else {
		e = NULL;
	}

	if (e) {
		cache_tag(rec + 4, pw, pwlen, tag);
		for (i = 0; i < CACHE_SLOTS; i++) {
			if (cache[i].user == e &&
			    ct_memcmp(cache[i].tag, tag, SHA256_LEN) == 0) {
				auth_stats.cache_hits++;
				return true;
			}
		}
	}

	iter = rd32(rec);
	if (iter == 0 || iter > 10000000)
		iter = 4096;	/* corrupt record: still spend the time */
	auth_stats.pbkdf2++;
	pbkdf2_sha256(pw, pwlen, rec + 4, SALT_LEN, iter, dk, SHA256_LEN);
	ok = ct_memcmp(dk, rec + 4 + SALT_LEN, SHA256_LEN) == 0 && e;
	memset(dk, 0, sizeof(dk));
	if (ok) {
		for (i = 0; i < CACHE_SLOTS && cache[i].user != e; i++)
			;
		if (i == CACHE_SLOTS)
			i = (int)(cache_next++ % CACHE_SLOTS);
		cache[i].user = e;
		memcpy(cache[i].tag, tag, SHA256_LEN);
	}
	return ok;
}

static void reply(struct http_resp *rs, int status, const char *body)
{
	rs->status = status;
	rs->body = body;
	rs->len = strlen(body);
}

static void handle(const struct http_req *req, struct http_resp *rs)
{
	char user[USER_MAX + 2], pw[PASS_MAX + 2];
	size_t ulen = 0, plen = 0;
	int u, p;

	u = http_query_get(req->query, req->query_len, "user", user,
			   sizeof(user), &ulen);
	p = http_query_get(req->query, req->query_len, "password", pw,
			   sizeof(pw), &plen);
	if (u == -1 || p == -1) {
		reply(rs, 400, "Bad Request\n");
	} else if (u == 0 || p == 0 || (u == 1 && ulen == 0)) {
		auth_stats.missing++;
		reply(rs, 401, "No user given\n");
	} else if (*fail_tokens(req->peer) == 0) {
		auth_stats.limited++;
		reply(rs, 429, "Too many failed logins, try again later\n");
		rs->extra = "Retry-After: 60\r\n";
	} else if (u < 0 || p < 0 || !check(user, ulen, pw, plen)) {
		/* too long to be a stored user/password, or no match */
		auth_stats.bad++;
		(*fail_tokens(req->peer))--;
		reply(rs, 401, "Invalid login\n");
	} else {
		/* user matched a stored name: [A-Za-z0-9._-] only */
		auth_stats.ok++;
		rs->status = 200;
		rs->len = (size_t)fmt(rs->buf, sizeof(rs->buf), "hello %s!\n", user);
		rs->body = rs->buf;
	}
	memset(pw, 0, sizeof(pw));
}

void app_main(void)
{
	plat_random(boot_key, sizeof(boot_key));
	size_t users = kv_init();

	for (size_t i = 0; i < kv_count; i++) {
		const struct kv_entry *e = &kv_table[i];
		if (e->keylen > 5 && !memcmp(e->key, "user/", 5) &&
		    e->vallen == REC_LEN) {
			memcpy(dummy_rec, e->val, 4);
			break;
		}
	}
	printk("auth: %zu users, HTTP on port %d\n", users, AUTH_PORT);
	if (http_serve(AUTH_PORT, handle) < 0) {
		printk("auth: cannot listen on %d\n", AUTH_PORT);
		return;
	}
	net_run();
	printk("auth: %u ok, %u invalid, %u without user, %u pbkdf2, %u cached, %u limited\n",
	       auth_stats.ok, auth_stats.bad, auth_stats.missing,
	       auth_stats.pbkdf2, auth_stats.cache_hits, auth_stats.limited);
}
