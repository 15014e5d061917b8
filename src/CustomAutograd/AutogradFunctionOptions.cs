// SPDX-License-Identifier: MIT
namespace CustomAutograd;

/// <summary>Options of a custom function, fixed when it is created.</summary>
public sealed record AutogradFunctionOptions
{
    /// <summary>The defaults: gradients materialised, Backward differentiable.</summary>
    public static AutogradFunctionOptions Default { get; } = new();

    /// <summary>
    /// Whether a missing output gradient reaches the Backward as zeros (true, as PyTorch's default) or as
    /// null. The Forward can override it per call with <see cref="ForwardContext.SetMaterializeGrads"/>.
    /// </summary>
    public bool MaterializeGrads { get; init; } = true;

    /// <summary>
    /// Runs the Backward under no-grad; differentiating its result raises an error naming the function.
    /// Equivalent to PyTorch's <c>@once_differentiable</c>.
    /// </summary>
    public bool OnceDifferentiable { get; init; }
}
