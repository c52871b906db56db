"""Message and branch flags (numbers shared with kamailio/kamailio.cfg's comment and usrloc nat_bflag)."""

FLT_NATS = 5  # request came from behind a NAT
FLB_NATB = 6  # branch goes to a NATed contact (usrloc nat_bflag)
FLB_NATSIPPING = 7  # OPTIONS keep-alives for this contact (nathelper sipping_bflag)

# nathelper nat_uac_test: 1 RFC1918 in Contact, 2 Via address != source, 16 Via port != source port, 64 the source is
# a WebSocket (a browser: its Contact names a made-up .invalid host, only its connection reaches it)
NAT_TEST = 1 | 2 | 16 | 64
