//! How dispatch moves a delivery from one status to the next (its updates and attempts).
