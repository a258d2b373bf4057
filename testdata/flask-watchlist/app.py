"""A movie watchlist REST API: Flask with SQLite through Flask-SQLAlchemy."""

from datetime import date

from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///watchlist.db"
app.config["JSON_SORT_KEYS"] = False
db = SQLAlchemy(app)


class Movie(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    title = db.Column(db.String(200), nullable=False)
    release_date = db.Column(db.Date, nullable=False)
    watched = db.Column(db.Boolean, nullable=False, default=False)

    def as_dict(self):
        return {
            "id": self.id,
            "title": self.title,
            "release_date": self.release_date.isoformat(),
            "watched": self.watched,
        }


def error(status, message):
    return jsonify({"error": message}), status


@app.errorhandler(404)
def not_found(_):
    return error(404, "not found")


@app.errorhandler(405)
def method_not_allowed(_):
    return error(405, "method not allowed")


@app.get("/")
def index():
    return jsonify(
        {
            "service": "movie watchlist",
            "endpoints": {
                "GET /api/": "all movies",
                "GET /api/<id>/": "one movie",
                "DELETE /api/<id>/": "remove a movie",
                "POST /api/create/": "add a movie: {title, release_date: YYYY-MM-DD}",
                "POST /api/watch/<id>/": "mark a movie as watched",
            },
        }
    )


@app.get("/api/")
def movies():
    return jsonify([m.as_dict() for m in Movie.query.order_by(Movie.id)])


@app.route("/api/<int:movie_id>/", methods=["GET", "DELETE"])
def movie(movie_id):
    m = db.session.get(Movie, movie_id)
    if m is None:
        return error(404, f"no movie with id {movie_id}")
    if request.method == "DELETE":
        db.session.delete(m)
        db.session.commit()
        return jsonify({"deleted": movie_id})
    return jsonify(m.as_dict())


@app.post("/api/create/")
def create():
    body = request.get_json(silent=True) or {}
    title = body.get("title")
    if not isinstance(title, str) or not title.strip():
        return error(400, "title is required")
    try:
        released = date.fromisoformat(str(body.get("release_date", "")))
    except ValueError:
        return error(400, "release_date must be YYYY-MM-DD")
    m = Movie(title=title.strip(), release_date=released)
    db.session.add(m)
    db.session.commit()
    return jsonify(m.as_dict()), 201


@app.route("/api/watch/<int:movie_id>/", methods=["GET", "POST", "PATCH"])
def watch(movie_id):
    m = db.session.get(Movie, movie_id)
    if m is None:
        return error(404, f"no movie with id {movie_id}")
    m.watched = True
    db.session.commit()
    return jsonify(m.as_dict())
