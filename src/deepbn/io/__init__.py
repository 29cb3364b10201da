"""Files in and out: network files (:mod:`.networks`: bnlearn/pgmpy and deepbn JSON),
data tables (:mod:`.tables`: CSV) and data sets (:mod:`.datasets`: Sachs, MNIST or any
``.npz``, downloaded once into a cache and checked)."""
