"""Network studies: every site runs the same study file and shares an aggregate-only package;
the coordinating centre pools the packages exactly (docs/network.md).

* :func:`read_site_run`: the one reader of a ``study run`` output folder (siterun);
* :func:`build_site_package`: counts, sufficient statistics and suppression (package, tables,
  suppression, paired);
* :func:`read_packages`, :func:`pool_packages`: verification and pooling (pool, meta).

Rendering (``preview.html``, the pooled ``report.html``) and the one-call helpers used by the
command line live in the report layer: :mod:`hyperinflam.report.network`.
"""

from hyperinflam.study.network.package import SitePackage, build_site_package, write_package_zip
from hyperinflam.study.network.pool import pool_packages, read_package, read_packages
from hyperinflam.errors import NetworkError
from hyperinflam.study.network.siterun import SiteRun, read_site_run
from hyperinflam.study.network.suppression import DEFAULT_MIN_CELL

__all__ = ["DEFAULT_MIN_CELL", "NetworkError", "SitePackage", "SiteRun", "build_site_package",
           "pool_packages", "read_package", "read_packages", "read_site_run",
           "write_package_zip"]
