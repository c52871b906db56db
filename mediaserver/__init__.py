"""The media application server (issue 23): a SIP user agent with its own media stack (pjsua2, pjproject) that
Kamailio routes calls to for what the platform says and hears — announcements first (kemi.policy.announce).
RTPengine stays in front of it as for every call. Started by the node runner (`make run`) next to Kamailio."""
