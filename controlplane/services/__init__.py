"""What runs beside the API in the control plane: the snapshot publisher, the CDR ingestor (and the feature codes the
records carry), the fraud monitor and its notifier, and the push of live state into Kamailio."""
