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


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
celery = Celery("webhooks", task_cls=FlaskTask)
