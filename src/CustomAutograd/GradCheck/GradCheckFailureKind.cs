// SPDX-License-Identifier: MIT
namespace CustomAutograd;

/// <summary>What a failed <see cref="GradCheck"/> or <see cref="GradGradCheck"/> found.</summary>
public enum GradCheckFailureKind
{
    /// <summary>The check passed.</summary>
    None,

    /// <summary>The analytical Jacobian (from backward) differs from the numerical one (finite differences);
    /// see <see cref="GradCheckResult.Mismatches"/>.</summary>
    JacobianMismatch,

    /// <summary>Backward threw while the analytical Jacobian was computed; see <see cref="GradCheckResult.Exception"/>.</summary>
    BackwardFailed,

    /// <summary>Running backward twice with the same input and output gradient gave results further apart than
    /// <see cref="GradCheckOptions.NondetTol"/>.</summary>
    BackwardNotReentrant,

    /// <summary>A gradient's shape differs from its input's.</summary>
    GradShapeMismatch,

    /// <summary>A gradient's dtype differs from its input's.</summary>
    GradDtypeMismatch,

    /// <summary>A gradient is on another device than its input.</summary>
    GradDeviceMismatch,

    /// <summary>Backward with all output gradients zero gave a non-zero input gradient.</summary>
    BackwardNotMultipliedByGradOutput,

    /// <summary>Backward failed, or gave non-zero input gradients, when some output gradients were undefined
    /// (<see cref="GradCheckOptions.CheckUndefinedGrad"/>).</summary>
    UndefinedGradNotSupported,

    /// <summary>No output requires grad, yet the outputs change when an input is perturbed.</summary>
    NonZeroNumericalGradient,
}
