/*
 * auth_record.h - the check programs' (kv_check.c, disk_check.c) reading
 * of auth's stored login records, independent of apps/auth.c: the record
 * of "user/USER" is iterations (BE32), salt (16) and PBKDF2-SHA256 (32).
 * One static function: each program is one file.
 */
#ifndef TESTS_AUTH_RECORD_H
#define TESTS_AUTH_RECORD_H

#include <string.h>

#include "kv.h"
#include "net.h"
#include "sha256.h"

/* "ok", "bad", "nouser" or "badrecord"; NULL for a user name over 100 bytes. */
static const char *auth_verdict(const char *user, const char *password)
{
	char key[128];
	uint8_t dk[32];
	size_t ul = strlen(user);

	if (ul > 100)
		return NULL;
	memcpy(key, "user/", 5);
	memcpy(key + 5, user, ul);
	const struct kv_entry *e = kv_get(key, 5 + ul);
	if (!e)
		return "nouser";
	if (e->vallen != 52)
		return "badrecord";
	pbkdf2_sha256(password, strlen(password), e->val + 4, 16, rd32(e->val), dk, 32);
	return ct_memcmp(dk, e->val + 20, 32) == 0 ? "ok" : "bad";
}

#endif
