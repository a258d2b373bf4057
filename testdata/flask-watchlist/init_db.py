"""Create the watchlist database and its tables, and seed four movies."""

from datetime import date

from app import Movie, app, db

SEED = [
    ("Fight Club", date(1999, 10, 15)),
    ("The Matrix", date(1999, 3, 31)),
    ("Donnie Darko", date(2001, 1, 19)),
    ("Inception", date(2010, 7, 16)),
]

with app.app_context():
    db.drop_all()
    db.create_all()
    db.session.add_all(Movie(title=t, release_date=d) for t, d in SEED)
    db.session.commit()
    print(f"created {db.engine.url} with {Movie.query.count()} movies")
