/*
 * app.h - the one entry point every app defines.
 *
 * The platform boots, then calls app_main(); when it returns the platform
 * exits with status 0. Network apps set up their listeners (tcp_listen,
 * udp_bind) and then call net_run() (net.h), which returns once the
 * platform's stop flag is set.
 */
#ifndef APP_H
#define APP_H

void app_main(void);

/* Name of the app, for the boot banner (defined by each app). */
extern const char app_name[];

#endif
