"""Herald's SQLMesh plan runner.

Follows the SQLMesh trackers on Herald's ``/api/events``; when someone opens a plan
(``POST /api/plan`` or ``POST /api/commands/apply``), runs it with SQLMesh on a local project and
reports every stage to ``POST /api/plan/stages``. Herald's cancel (``POST /api/plan/cancel``) trips
SQLMesh's circuit breaker. Run it with ``python -m herald_runner`` (see README.md beside this package).
"""

__version__ = "0.1.0"
