"""The web dashboard: server-rendered pages over torc's REST API (`torc dash`, and torc-server at `/`)."""

from torc.dashboard.app import DashboardConfig, create_dashboard, dashboard_routes, mount_dashboard

__all__ = ["DashboardConfig", "create_dashboard", "dashboard_routes", "mount_dashboard"]
