/* ping - the network stack alone: gets an address, answers ARP and ICMP. */
#include "../core/app.h"
#include "../core/net.h"

const char app_name[] = "ping";

void app_main(void)
{
	net_run();
}
