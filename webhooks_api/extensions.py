"""Extensions created unbound and bound to the app in `create_app` (Flask's pattern)."""

from celery import Celery, Task
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


class FlaskTask(Task):
    """Runs each task in an app context of its own: one session per task, removed after."""

    def __call__(self, *args, **kwargs):
        with self.app.flask_app.app_context():
            return self.run(*args, **kwargs)

    def apply_async(self, args=None, kwargs=None, **options):
        """Readable, secret-free arguments in Flower, also for `self.retry()`, whose new
        message would otherwise carry Celery's repr of the raw arguments."""
        if "argsrepr" not in options and "kwargsrepr" not in options:
            from flask import has_app_context

            from .task_labels import reprs_for_call

            flask_app = getattr(self.app, "flask_app", None)
            if has_app_context() or flask_app is None:
                reprs = reprs_for_call(self.name, args, kwargs)
            else:
                with flask_app.app_context():
                    reprs = reprs_for_call(self.name, args, kwargs)
            if reprs is not None:
                options["argsrepr"], options["kwargsrepr"] = reprs
        return super().apply_async(args, kwargs, **options)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
celery = Celery("webhooks", task_cls=FlaskTask)
