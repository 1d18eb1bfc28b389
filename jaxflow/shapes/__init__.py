"""Shapes: procedural triangle meshes with exact surface sampling, neural-ODE deformation, point-cloud autoencoders
and amortized sliced distances (docs/shapes.md)."""

from jaxflow.shapes.amortized import LinearSliceAmortizer, SliceAmortizer, amortized_vmf_sw
from jaxflow.shapes.autoencoder import PointCloudAutoencoder
from jaxflow.shapes.deform import DeformationField, deform, fit_deformation, min_jacobian_determinant
from jaxflow.shapes.meshes import (
    Mesh,
    face_areas,
    face_normals,
    icosphere,
    mesh_measure,
    normal_consistency,
    random_deformation,
    random_shape,
    sample_surface,
    superquadric,
    torus,
)

__all__ = [
    "DeformationField",
    "LinearSliceAmortizer",
    "Mesh",
    "PointCloudAutoencoder",
    "SliceAmortizer",
    "amortized_vmf_sw",
    "deform",
    "face_areas",
    "face_normals",
    "fit_deformation",
    "icosphere",
    "mesh_measure",
    "min_jacobian_determinant",
    "normal_consistency",
    "random_deformation",
    "random_shape",
    "sample_surface",
    "superquadric",
    "torus",
]
