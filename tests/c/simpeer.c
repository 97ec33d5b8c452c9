/* simpeer.c - see simpeer.h */
#include <string.h>

#include "simpeer.h"

struct sim_grant sim_gnt[SIM_GNT_MAX];
int sim_gnt_next;
int sim_fail_grant_after = -1;

void sim_gnt_reset(void)
{
	memset(sim_gnt, 0, sizeof(sim_gnt));
	sim_gnt_next = 0;
	sim_fail_grant_after = -1;
}

int sim_grant(uint16_t domid, void *page, bool readonly)
{
	if (((uintptr_t)page & (SIM_PAGE_SIZE - 1)) != 0)
		return -1; /* grants are of whole pages */
	if (sim_gnt_next >= SIM_GNT_MAX || sim_gnt_next == sim_fail_grant_after)
		return -1;
	int ref = sim_gnt_next++;
	sim_gnt[ref].used = true;
	sim_gnt[ref].ro = readonly;
	sim_gnt[ref].domid = domid;
	sim_gnt[ref].page = page;
	return ref;
}

uint8_t *sim_map(uint16_t backend, uint32_t ref, bool write)
{
	if (ref >= SIM_GNT_MAX || !sim_gnt[ref].used || sim_gnt[ref].domid != backend)
		return NULL;
	if (write && sim_gnt[ref].ro)
		return NULL;
	return sim_gnt[ref].page;
}

uint32_t sim_take(struct sim_script *s, int bytes)
{
	uint32_t v = 0;
	for (int i = 0; i < bytes; i++) {
		v = v << 8 | (s->n ? *s->p : 0);
		if (s->n) {
			s->p++;
			s->n--;
		}
	}
	return v;
}
