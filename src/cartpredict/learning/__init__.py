"""Learning (the ``[learn]`` extra): snapshots, columnar features, fitting, training, evaluation,
plots, the simulator, public datasets."""
