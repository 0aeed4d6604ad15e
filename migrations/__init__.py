"""The schema's Alembic migrations, installed as the package `webhooks_migrations`
(setup.py) so that the app finds them in the checkout and in an installed wheel alike."""
