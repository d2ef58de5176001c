"""autograder.gradebook.share_engines: nbgrader's Gradebooks of one process reuse one SQLAlchemy engine per URL."""

from nbgrader.api import Gradebook

from autograder.gradebook import share_engines


def test_gradebooks_share_one_engine_per_url_and_still_read_and_write(tmp_path):
    share_engines()
    share_engines()  # idempotent: not wrapped twice
    import nbgrader.api

    assert nbgrader.api.create_engine._autograder_shared
    first, other = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    with Gradebook(first) as gb:
        engine = gb.engine
        gb.add_student("ada")
    with Gradebook(first) as gb:
        assert gb.engine is engine  # its compiled-statement cache is kept between gradebooks
        assert [s.id for s in gb.students] == ["ada"]  # what the closed gradebook wrote is there
        with Gradebook(other) as gb2:
            assert gb2.engine is not engine
            assert gb2.students == []
        gb.add_student("alan")  # the inner close disposed nothing of this one's
    with Gradebook(first) as gb:
        assert sorted(s.id for s in gb.students) == ["ada", "alan"]
