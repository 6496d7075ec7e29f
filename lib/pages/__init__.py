"""The generated pages of the book: the tables gathered from every run (:mod:`~lib.pages.tables`), the page
"Results across runs" (:mod:`~lib.pages.results`), the page "Execution of the chapters"
(:mod:`~lib.pages.execution`) and the GPU records (:mod:`~lib.pages.gpu_record`).

They read run records through :mod:`lib.runtime.record`; no chapter's run depends on them, so editing them
leaves every run current.
"""

__all__ = ["tables", "results", "execution", "gpu_record"]
