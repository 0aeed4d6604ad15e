"""Flask extensions created unbound and bound to the app in `create_app` (Flask's pattern).

The Celery app is in webhooks_api.messaging.celery_glue, so that the data model, which
imports `db` from here, does not import Celery."""

from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
