"""Tests of the chart's monitoring assets (alerts, dashboard) with Debian's Prometheus tools."""
