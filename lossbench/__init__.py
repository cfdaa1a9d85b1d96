"""lossbench: paired comparisons of ways to combine a recommender's main and auxiliary losses."""

__version__ = "0.1.0"
