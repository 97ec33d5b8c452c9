"""What the controller knows about a dom0: its tools (xl), its files and services (dnsmasq's
leases and ranges, the unikernel paths) and the xl configs it runs — parsed and written here only."""
