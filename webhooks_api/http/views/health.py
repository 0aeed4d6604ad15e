"""Health for load balancers and orchestrators; no authentication."""

from flask.views import MethodView

from webhooks_api.config import current_settings
from webhooks_api.http.schemas import HealthSchema, ReadinessSchema
from webhooks_api.http.views.base import ApiBlueprint
from webhooks_api.services.health import readiness

blp = ApiBlueprint("health", __name__, authenticated=False,
                   description="Process health and readiness")


@blp.route("/healthz")
class Health(MethodView):
    @blp.doc(security=[])
    @blp.response(200, HealthSchema)
    def get(self):
        """The process is up and serving requests."""
        return {"status": "ok"}


@blp.route("/readyz")
class Readiness(MethodView):
    @blp.doc(security=[])
    @blp.response(200, ReadinessSchema)
    @blp.alt_response(503, schema=ReadinessSchema, description="A dependency is down")
    def get(self):
        """PostgreSQL and the broker answer; 503 naming the one that does not. `warnings`
        names what needs an operator without making this process unready: no sweep
        finished for 3 sweep intervals (beat is down)."""
        state = readiness(current_settings())
        ready = all(dependency.up for dependency in state.dependencies)
        body = {
            "status": "ready" if ready else "unavailable",
            "dependencies": {
                dependency.name: {"status": "up"} if dependency.up
                else {"status": "down", "error": dependency.error}
                for dependency in state.dependencies
            },
            "warnings": state.warnings,
        }
        return body, 200 if ready else 503
