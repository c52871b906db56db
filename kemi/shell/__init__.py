"""The thin Kamailio shell: reads KSR into facts, applies Decisions to KSR. No policy here."""
