/*
 * www - serves the bundled directory (appdata.py, key "/<path>", meta the
 * content type), or the files of the attached disk (kv_init), on port 80;
 * "/" and "dir/" map to index.html.
 */
#include "../core/app.h"
#include "../core/http.h"
#include "../core/kv.h"
#include "../core/net.h"

const char app_name[] = "www";

#define WWW_PORT 80
#define PATH_MAX_LEN 255

static void handle(const struct http_req *req, struct http_resp *rs)
{
	static const char index[] = "index.html";
	char path[PATH_MAX_LEN + 1 + sizeof(index)];
	const struct kv_entry *e;
	long n;

	n = http_pct_decode(req->path, req->path_len, path, PATH_MAX_LEN + 1,
			    false);
	if (n == -1 || (n > 0 && strlen(path) != (size_t)n)) {
		rs->status = 400;	/* bad escape or an embedded NUL */
		rs->body = "Bad Request\n";
		rs->len = 12;
		return;
	}
	e = NULL;
	if (n > 0) {
		if (path[n - 1] == '/') {
			memcpy(path + n, index, sizeof(index));
			n += (long)sizeof(index) - 1;
		}
		e = kv_get(path, (size_t)n);
	}
	if (!e) {
		rs->status = 404;
		rs->body = "Not Found\n";
		rs->len = 10;
		return;
	}
	rs->status = 200;
	rs->ctype = e->meta;
	rs->body = e->val;
	rs->len = e->vallen;
}

void app_main(void)
{
	printk("www: %zu files, HTTP on port %d\n", kv_init(), WWW_PORT);
	if (http_serve(WWW_PORT, handle) < 0) {
		printk("www: cannot listen on %d\n", WWW_PORT);
		return;
	}
	net_run();
}
