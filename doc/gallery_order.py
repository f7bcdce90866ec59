"""Order of the gallery's examples, for sphinx-gallery's ``within_subsection_order``.

From the first thing a user does to the more specialised uses; an example not listed here comes
after these, in file-name order. conf.py names this class by its import path, which keeps the
Sphinx configuration picklable.
"""

ORDER = [
    "plot_density_2d.py",
    "plot_paths_couplings.py",
    "plot_grid_search.py",
    "plot_classifier.py",
    "plot_imputation.py",
    "plot_outlier_detection.py",
    "plot_transport.py",
    "plot_digits.py",
]


class ExampleOrder:
    """Sort key of an example's file name (sphinx-gallery instantiates it with the source
    folder)."""

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        return (ORDER.index(filename) if filename in ORDER else len(ORDER), filename)

    def __repr__(self):
        return f"<{type(self).__name__}>"
