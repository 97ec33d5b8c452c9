/* hello - console only: the smallest kernel we build. */
#include "../core/app.h"
#include "../core/rt.h"

const char app_name[] = "hello";

void app_main(void)
{
	printk("Hello World!\n");
}
