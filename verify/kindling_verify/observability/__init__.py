"""k8s/observability: rules, scrape config, dashboards, relabelling, and queries against real data."""
