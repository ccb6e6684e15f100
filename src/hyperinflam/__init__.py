"""hyperinflam: screen PICU stays for the hyperinflammatory phenotype (sHLH / MAS / sepsis-MODS),
follow anakinra therapy, and run the founding case-series study on your own data."""

__version__ = "0.1.0"
